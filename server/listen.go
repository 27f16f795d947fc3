package server

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/mdlayher/vsock"
	"github.com/prometheus/exporter-toolkit/web"
)

// Listen binds the listeners the web flags name, as exporter-toolkit's
// ListenAndServe would, but without serving yet: the exporter binds first,
// so that a busy port fails at once, before any probe is sent. Serve them
// with web.ServeMultiple.
func Listen(flags *web.FlagConfig) ([]net.Listener, error) {
	if flags.WebConfigFile != nil && *flags.WebConfigFile != "" {
		if err := web.Validate(*flags.WebConfigFile); err != nil {
			return nil, fmt.Errorf("--web.config.file: %w", err)
		}
	}
	if flags.WebSystemdSocket != nil && *flags.WebSystemdSocket {
		listeners, err := activation.Listeners()
		if err != nil {
			return nil, err
		}
		if len(listeners) == 0 {
			return nil, errors.New("--web.systemd-socket: no socket activation file descriptors found")
		}
		return listeners, nil
	}
	if flags.WebListenAddresses == nil || len(*flags.WebListenAddresses) == 0 {
		return nil, errors.New("no --web.listen-address given")
	}
	var listeners []net.Listener
	for _, address := range *flags.WebListenAddresses {
		l, err := listen(address)
		if err != nil {
			for _, opened := range listeners {
				opened.Close()
			}
			return nil, err
		}
		listeners = append(listeners, l)
	}
	return listeners, nil
}

func listen(address string) (net.Listener, error) {
	if !strings.HasPrefix(address, "vsock://") {
		return net.Listen("tcp", address)
	}
	u, err := url.Parse(address)
	if err != nil {
		return nil, err
	}
	_, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", address, err)
	}
	n, err := strconv.ParseUint(port, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("%s: bad port: %w", address, err)
	}
	return vsock.Listen(uint32(n), nil)
}
