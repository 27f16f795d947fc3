package prober

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"

	commoncfg "github.com/prometheus/common/config"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
)

// maxResponseBytes bounds what one response may put on the wire: headers
// (Go alone would allow 10 MiB of them) and the body the prober reads.
const maxResponseBytes = MaxBodyBytes + 128<<10

// maxRedirects bounds redirects followed within the base_url's origin.
const maxRedirects = 5

var errResponseTooLarge = fmt.Errorf("response larger than %d bytes", maxResponseBytes)

// NewClient returns the HTTP client for probes with the given settings,
// built by prometheus/common. It never sends a request to an origin other
// than the first request's, and reads at most maxResponseBytes of a response.
func NewClient(settings config.HTTPClient) (*http.Client, error) {
	client, err := commoncfg.NewClientFromConfig(settings.ClientConfig(), "ratelimit_exporter",
		commoncfg.WithDialContextFunc(dialBounded))
	if err != nil {
		return nil, err
	}
	follow := settings.FollowRedirects
	client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		// Go keeps the Authorization header on a redirect to the same host
		// on another port, so the origin check is ours.
		if !follow || origin(req.URL) != origin(via[0].URL) || len(via) > maxRedirects {
			return http.ErrUseLastResponse
		}
		return nil
	}
	return client, nil
}

// origin is a URL's scheme, host and port, with the scheme's default port made explicit.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Hostname()) + ":" + port
}

func dialBounded(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c := &boundedConn{Conn: conn}
	c.left.Store(maxResponseBytes)
	return c, nil
}

// boundedConn allows maxResponseBytes to be read after each write: an
// HTTP/1.1 client writes a request, then reads its response, so no
// response, headers included, can be larger, however the upstream behaves.
type boundedConn struct {
	net.Conn
	left atomic.Int64
}

func (c *boundedConn) Write(p []byte) (int, error) {
	c.left.Store(maxResponseBytes)
	return c.Conn.Write(p)
}

func (c *boundedConn) Read(p []byte) (int, error) {
	left := c.left.Load()
	if left <= 0 {
		return 0, errResponseTooLarge
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := c.Conn.Read(p)
	c.left.Add(-int64(n))
	return n, err
}
