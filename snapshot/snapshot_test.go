package snapshot

import "testing"

// A report is OK when every probed target read rate limits and every admin
// source read every scope; a target no probe is for cannot fail it, one
// not probed yet can.
func TestHealthy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		targets []Target
		admin   []AdminSource
		want    bool
	}{
		{name: "nothing", want: true},
		{name: "probed", targets: []Target{{OK: true, Result: "success"}}, want: true},
		{name: "a failed probe", targets: []Target{{OK: true, Result: "success"}, {Result: "unauthorized"}}},
		{name: "pending", targets: []Target{{Result: ResultPending}}},
		{name: "not probed, nothing read", targets: []Target{{Result: ResultNotProbed}}, want: true},
		{name: "an admin source failed", targets: []Target{{OK: true, Result: "success"}}, admin: []AdminSource{{OK: true}, {}}},
		{name: "admin sources read", admin: []AdminSource{{OK: true}}, want: true},
	} {
		r := Report{Targets: tc.targets, Admin: tc.admin}
		if got := r.Healthy(); got != tc.want {
			t.Errorf("%s: Healthy() = %v, want %v", tc.name, got, tc.want)
		}
	}
}
