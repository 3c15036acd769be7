package certfleet

import (
	"slices"
	"testing"
)

func TestChildEnv(t *testing.T) {
	got := ChildEnv([]string{"PATH=/bin", "CERTFLEET_MASTER_KEY=cfmk1:secret", "HOME=/root", "CERTFLEET_MASTER_KEY_FILE=x"}, "CERTFLEET_NAME=web")
	want := []string{"PATH=/bin", "HOME=/root", "CERTFLEET_MASTER_KEY_FILE=x", "CERTFLEET_NAME=web"}
	if !slices.Equal(got, want) {
		t.Fatalf("ChildEnv = %q, want %q", got, want)
	}
}
