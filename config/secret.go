package config

import (
	"fmt"
	"log/slog"
)

const hidden = "<secret>"

// Secret holds an API key. Every way of printing or marshalling it yields
// "<secret>"; only Reveal returns the value, for the Authorization header.
type Secret string

// Reveal returns the secret's value. Call it only to build a request.
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer.
func (Secret) String() string { return hidden }

// GoString implements fmt.GoStringer, for %#v.
func (Secret) GoString() string { return hidden }

// Format implements fmt.Formatter so that no verb, %x and %q included, prints the value.
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(hidden)) }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue(hidden) }

// MarshalYAML implements yaml.Marshaler.
func (Secret) MarshalYAML() (any, error) { return hidden, nil }

// MarshalJSON implements json.Marshaler.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + hidden + `"`), nil }

// MarshalText implements encoding.TextMarshaler.
func (Secret) MarshalText() ([]byte, error) { return []byte(hidden), nil }
