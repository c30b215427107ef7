package hostio

import (
	"testing"

	"github.com/enarx-go/enarx/config"
)

// TestNotAllowed: the host directories of host and sealed dir entries and
// the key files of "file:" keys each need an exact entry in the allowed
// list (a parent directory does not allow what is beneath it); memory
// directories and the Keep's own keys need none.
func TestNotAllowed(t *testing.T) {
	cfg := &config.Config{Files: []config.File{
		{Kind: config.KindStdin},
		dirEntry("mem", config.SourceMemory, "", ""),
		dirEntry("host", config.SourceHost, "/srv/app/", ""),
		dirEntry("sealed", config.SourceSealed, "/srv/db", "snp"),
		dirEntry("dev", config.SourceSealed, "/srv/dev", config.KeyFilePrefix+"/etc/enarx/dev.key"),
	}}
	for _, tc := range []struct {
		allowed []string
		want    string // the path refused, "" none
		what    string
	}{
		{nil, "/srv/app/", "directory"},
		{[]string{"/srv"}, "/srv/app/", "directory"},
		{[]string{"/srv/app"}, "/srv/db", "directory"},
		{[]string{"/srv/app", "/srv/db", "/srv/dev"}, "/etc/enarx/dev.key", "volume key file"},
		{[]string{"/srv/app", "/srv/db/", "/srv/dev", "/etc/enarx/dev.key"}, "", ""},
	} {
		p := NotAllowed(cfg, tc.allowed)
		switch {
		case tc.want == "" && p != nil:
			t.Errorf("allowed %q: refused %+v", tc.allowed, *p)
		case tc.want != "" && (p == nil || p.Path != tc.want || p.What != tc.what):
			t.Errorf("allowed %q: refused %+v, want the %s %s", tc.allowed, p, tc.what, tc.want)
		}
	}
	if p := NotAllowed(&config.Config{Files: []config.File{dirEntry("mem", config.SourceMemory, "", "")}}, nil); p != nil {
		t.Errorf("a memory directory needs %+v", *p)
	}
}
