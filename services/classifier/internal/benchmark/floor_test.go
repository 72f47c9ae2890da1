package benchmark

import (
	"testing"
	"time"

	"mailroom.dev/fakes/fakeopenai"
)

// The floor at the real limits follows their changes and leaves out what
// the other client took.
func TestFloor(t *testing.T) {
	rpm := func(l fakeopenai.Limits) int { return l.RPM }
	half := make([]fakeopenai.Second, 120)
	for i := range half {
		half[i] = fakeopenai.Second{Admitted: 10}
	}
	for _, tc := range []struct {
		name   string
		amount float64
		steps  []limitStep
		other  func(time.Duration) float64
		want   time.Duration
	}{
		{"constant", 1200, limitSteps(fakeopenai.Limits{RPM: 1200}, nil, "", rpm), nil, time.Minute},
		{"halved at 15 s, doubled back at 30 s", 1000, limitSteps(fakeopenai.Limits{RPM: 1200}, []fakeopenai.LimitChange{
			{At: 30 * time.Second, Limits: fakeopenai.Limits{RPM: 1200}},
			{At: 15 * time.Second, Limits: fakeopenai.Limits{RPM: 600}},
			{At: 5 * time.Second, Model: "gpt-4o", Limits: fakeopenai.Limits{RPM: 1}},
		}, "", rpm), nil, 57500 * time.Millisecond},
		{"half taken by another client", 600, limitSteps(fakeopenai.Limits{RPM: 1200}, nil, "", rpm),
			otherUse(half, func(s fakeopenai.Second) int64 { return s.Admitted }), time.Minute},
		{"unlimited", 600, limitSteps(fakeopenai.Limits{}, nil, "", rpm), nil, 0},
	} {
		if got := floor(tc.amount, tc.steps, tc.other); got < tc.want-10*time.Millisecond || got > tc.want+10*time.Millisecond {
			t.Errorf("%s: floor %s, want %s", tc.name, got, tc.want)
		}
	}
}
