package config

import (
	"strings"
	"testing"
	"time"
)

// TestSchedulerConfig: issue 16 finding 2, the lease's takeover and
// heartbeat are settings (docs/postgres.md promised "a shorter lease means
// faster takeover" with none to set).
func TestSchedulerConfig(t *testing.T) {
	if got := mustParse(t, ca).Scheduler; got != (Scheduler{}) {
		t.Errorf("no [scheduler]: %+v, want the manager's defaults", got)
	}
	got := mustParse(t, ca+"[scheduler]\ntakeover = \"6s\"\nheartbeat = \"1s\"\n").Scheduler
	if want := (Scheduler{Takeover: 6 * time.Second, Heartbeat: time.Second}); got != want {
		t.Errorf("[scheduler] = %+v, want %+v", got, want)
	}
	if got := mustParse(t, ca+"[scheduler]\ntakeover = \"1m\"\n").Scheduler; got != (Scheduler{Takeover: time.Minute}) {
		t.Errorf("takeover alone = %+v", got)
	}
	for _, tc := range []struct{ name, src, want string }{
		{"bad takeover", "[scheduler]\ntakeover = \"soon\"\n", `certfleet.toml:4: scheduler.takeover: invalid duration "soon"`},
		{"short takeover", "[scheduler]\ntakeover = \"1s\"\n", `certfleet.toml:4: scheduler.takeover: "1s" is out of range; use 2s to 1h0m0s`},
		{"long takeover", "[scheduler]\ntakeover = \"2h\"\n", `certfleet.toml:4: scheduler.takeover: "2h" is out of range`},
		{"short heartbeat", "[scheduler]\nheartbeat = \"10ms\"\n", `certfleet.toml:4: scheduler.heartbeat: "10ms" is too short`},
		{"heartbeat over a third of the default", "[scheduler]\nheartbeat = \"4s\"\n",
			`certfleet.toml:4: scheduler.heartbeat: heartbeat 4s is more than a third of takeover 10s`},
		{"heartbeat over a third", "[scheduler]\ntakeover = \"3s\"\nheartbeat = \"2s\"\n",
			`certfleet.toml:5: scheduler.heartbeat: heartbeat 2s is more than a third of takeover 3s`},
		{"unknown key", "[scheduler]\nlease = \"5s\"\n", `certfleet.toml:4: scheduler.lease: unknown key lease`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			problems := mustProblems(t, ca+tc.src)
			if len(problems) != 1 || !strings.HasPrefix(problems[0].String(), tc.want) {
				t.Errorf("problems = %v, want one starting %q", problems, tc.want)
			}
		})
	}
}
