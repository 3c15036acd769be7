package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestMasterKey(t *testing.T) {
	cfg, err := Parse("/etc/certfleet/certfleet.toml", []byte(`
master_key_file = "master.key"
previous_master_key_files = ["/secrets/old.key"]
`))
	if err != nil {
		t.Fatal(err)
	}
	want := MasterKey{File: "/etc/certfleet/master.key", PreviousFiles: []string{"/secrets/old.key"}}
	if !reflect.DeepEqual(cfg.MasterKey, want) {
		t.Errorf("MasterKey = %+v, want %+v", cfg.MasterKey, want)
	}
	for _, tc := range []struct{ src, want string }{
		{`master_key_file = ""`, "master_key_file: must name a file"},
		{`master_key_file = 3`, "master_key_file: must be a string"},
		{`previous_master_key_files = ["/a.key"]`, "set master_key_file to the new master key"},
		{`master_key_file = "~/m.key"`, "~ is not expanded"},
	} {
		_, err := Parse("/etc/certfleet/certfleet.toml", []byte(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.src, err, tc.want)
		}
	}
}
