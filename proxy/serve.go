package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/net/netutil"

	"github.com/ratelimit-exporter/ratelimit_exporter/config"
	"github.com/ratelimit-exporter/ratelimit_exporter/internal/drain"
)

// Timeouts of the proxy's listener. There is no write timeout: a response
// may stream for minutes. The body's read timeout is the handler's
// (body_read_timeout), which lifts it once the body is read.
const (
	readHeaderTimeout = 10 * time.Second
	// maxHeaderBytes bounds a request's headers, as Envoy's 60 KiB and
	// nginx's 32 KiB do: net/http's 1 MB default would let 1,024 idle
	// connections hold a gigabyte outside every other bound. An API
	// request's headers are a few hundred bytes.
	maxHeaderBytes = 64 << 10
	// maxConcurrentStreams bounds the requests one HTTP/2 connection
	// carries at once: the least RFC 9113 advises, not Go's 250.
	maxConcurrentStreams = 100
	idleTimeout          = 2 * time.Minute
)

// Listen binds cfg.ListenAddress, having checked cfg.TLSServerConfig, so
// that a busy port or a bad certificate fails at once, before anything is
// served.
func Listen(cfg *config.Proxy) (net.Listener, error) {
	if err := CheckTLS(cfg); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", cfg.ListenAddress)
	if err != nil {
		return nil, fmt.Errorf("proxy listen_address: %w", err)
	}
	return l, nil
}

// CheckTLS loads cfg.TLSServerConfig's certificate, if any, as serving
// would: what a start would refuse, a reload refuses too.
func CheckTLS(cfg *config.Proxy) error {
	if cfg.TLSServerConfig == nil {
		return nil
	}
	if _, err := web.ConfigToTLSConfig(cfg.TLSServerConfig); err != nil {
		return fmt.Errorf("proxy tls_server_config: %w", err)
	}
	return nil
}

// Serve serves h on l, with TLS when cfg.TLSServerConfig is set, until ctx
// ends; then it stops accepting, lets the requests in flight finish within
// grace, cuts off those still open and returns once every connection is
// closed. It returns nil after a shutdown in which every request
// finished, and otherwise the error that ended it. It closes l.
//
// Once closing is closed, while it still serves, each answer asks its
// client to close the connection and idle connections are closed: a
// client's next request opens a new one, which a load balancer that no
// longer counts this replica ready sends to another.
//
// At most cfg.MaxConnections client connections are open at once: more
// wait in the kernel's backlog, not accepted, so that each costs nothing
// here until one closes.
func Serve(ctx context.Context, closing <-chan struct{}, l net.Listener, cfg *config.Proxy, h http.Handler, grace time.Duration, logger log.Logger) error {
	if logger == nil {
		logger = log.NewNopLogger()
	}
	l = netutil.LimitListener(l, cfg.MaxConnections)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: maxConcurrentStreams},
		IdleTimeout:       idleTimeout,
		ErrorLog:          debugLog(logger),
		// "OPTIONS *" too is the handler's to refuse.
		DisableGeneralOptionsHandler: true,
	}
	if cfg.TLSServerConfig != nil {
		tlsConfig, err := web.ConfigToTLSConfig(cfg.TLSServerConfig)
		if err != nil {
			l.Close()
			return fmt.Errorf("proxy tls_server_config: %w", err)
		}
		srv.TLSConfig = tlsConfig
	}

	select {
	case <-closing:
		// Started within a shutdown delay (a reload replaced the
		// listener): no answer keeps its connection, the first included.
		srv.SetKeepAlivesEnabled(false)
	default:
	}
	served := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			served <- srv.ServeTLS(l, "", "") // the certificate comes from TLSConfig.GetCertificate
		} else {
			served <- srv.Serve(l)
		}
	}()
	go func() {
		select {
		case <-closing:
			srv.SetKeepAlivesEnabled(false)
		case <-ctx.Done():
		}
	}()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}

	err := drain.Shutdown(srv, grace)
	if err != nil {
		level.Warn(logger).Log("msg", "Proxy requests still in flight after the grace period are cut off", "grace_period", grace)
		err = fmt.Errorf("proxy shutdown: %w", err)
	}
	if serveErr := <-served; !errors.Is(serveErr, http.ErrServerClosed) {
		return errors.Join(err, serveErr)
	}
	return err
}
