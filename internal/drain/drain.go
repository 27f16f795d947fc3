// Package drain shuts HTTP servers down the one way the exporter does it.
package drain

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// Shutdown stops srv accepting, lets the requests in flight finish within
// grace, then cuts off those still open. It returns once every
// connection is closed: nil if every request finished in time.
func Shutdown(srv *http.Server, grace time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
		return fmt.Errorf("requests still in flight after the grace period of %s were cut off: %w", grace, err)
	}
	return nil
}
