package deploy_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certfleet/certfleet/deploy"
)

// TestBatchDebounce checks serve's batching of the [deploy] commands: changes closer than the
// quiet period are one batch; a later change is the next one.
func TestBatchDebounce(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "global.log")
	cmds := [][]string{{"sh", "-c", "echo \"$CERTFLEET_CHANGED|$CERTFLEET_CERTIFICATE\" >> " + log}}
	g := &deploy.Batch{Writer: &deploy.Writer{}, Commands: func() [][]string { return cmds }}
	g.Debounce(200 * time.Millisecond)
	g.Note(deploy.Change{Name: "a", Env: []string{"CERTFLEET_CERTIFICATE=a"}})
	g.Note(deploy.Change{Name: "b", Env: []string{"CERTFLEET_CERTIFICATE=b"}})
	g.Note(deploy.Change{Name: "a", Env: []string{"CERTFLEET_CERTIFICATE=a"}})
	read := func() string {
		b, _ := os.ReadFile(log)
		return string(b)
	}
	deadline := time.Now().Add(5 * time.Second)
	for read() == "" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := read(); got != "a b|a\n" {
		t.Fatalf("first batch logged %q, want \"a b|a\\n\"", got)
	}
	g.Note(deploy.Change{Name: "c", Env: []string{"CERTFLEET_CERTIFICATE=c"}})
	if err := g.Flush(t.Context()); err != nil { // serve's shutdown flush
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the stopped timer must not run it again
	if got := read(); got != "a b|a\nc|c\n" {
		t.Fatalf("log %q, want the second batch once", got)
	}
}
