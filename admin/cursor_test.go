package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// An API whose cursors go round, A, B, A, ..., fails when a cursor comes
// back, not after the page cap's hundred pages.
func TestCursorLoop(t *testing.T) {
	pages := map[string]string{
		"openai":    `{"data":[],"has_more":true,"last_id":%q}`,
		"anthropic": `{"data":[],"next_page":%q}`,
		"costs":     `{"data":[],"has_more":true,"next_page":%q}`,
	}
	for name, list := range map[string]func(url string) error{
		"openai":    func(url string) error { _, err := newOpenAI(url).List(context.Background()); return err },
		"anthropic": func(url string) error { _, err := newAnthropic(url).List(context.Background()); return err },
		"openai costs": func(url string) error {
			_, err := newOpenAICosts(url).Costs(context.Background(), june)
			return err
		},
		"anthropic costs": func(url string) error {
			_, err := newAnthropicCosts(url).Costs(context.Background(), june)
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			page := pages[name]
			if page == "" {
				page = pages["costs"]
			}
			requests := 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests++
				q := r.URL.Query()
				next := "A"
				if q.Get("after") == "A" || q.Get("page") == "A" {
					next = "B"
				}
				_, _ = fmt.Fprintf(w, page, next)
			}))
			defer srv.Close()
			err := list(srv.URL)
			var e *Error
			if !errors.Is(err, ErrMalformed) || !errors.As(err, &e) || e.Page != 3 || requests != 3 {
				t.Errorf("after %d requests: %v; want a malformed body on page 3", requests, err)
			}
		})
	}
}
