package hostio

import (
	"os"
	"path/filepath"
	"strings"
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

// TestNotAllowedDotDot: a host path with a ".." element is refused even
// when it cleans to an allowed path. Before, "allowed/x/.." passed as
// "allowed" (filepath.Clean), while Open handed it to the kernel, which
// follows a symbolic link x before the "..": with x pointing into another
// directory, Open opened that directory's parent, which nobody allowed.
func TestNotAllowedDotDot(t *testing.T) {
	allowed := t.TempDir()
	elsewhere := t.TempDir()
	if err := os.Mkdir(filepath.Join(elsewhere, "inner"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A link the workload could have made in the allowed directory
	// (path_symlink takes relative targets).
	rel, err := filepath.Rel(allowed, filepath.Join(elsewhere, "inner"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(rel, filepath.Join(allowed, "x")); err != nil {
		t.Fatal(err)
	}
	sneaky := allowed + "/x/.."
	// What Open would hand the workload: elsewhere, not allowed.
	if st, err := os.Stat(sneaky); err != nil {
		t.Fatal(err)
	} else if want, _ := os.Stat(elsewhere); !os.SameFile(st, want) {
		t.Fatalf("%s is not %s: the test's link does not work", sneaky, elsewhere)
	}
	for _, f := range []config.File{
		dirEntry("host", config.SourceHost, sneaky, ""),
		dirEntry("sealed", config.SourceSealed, allowed, config.KeyFilePrefix+allowed+"/x/../key"),
	} {
		p := NotAllowed(&config.Config{Files: []config.File{f}}, []string{allowed, allowed + "/key"})
		if p == nil || !p.DotDot || !strings.Contains(p.Path, "/x/..") {
			t.Errorf("%s entry with %q: refused %+v, want its \"..\" path refused", f.Dir.Source, f.Dir.HostPath+" "+f.Dir.Key, p)
		}
	}
	// Without "..", the same allowed path still passes.
	if p := NotAllowed(&config.Config{Files: []config.File{dirEntry("host", config.SourceHost, allowed+"/./", "")}}, []string{allowed}); p != nil {
		t.Errorf("%s/./ refused: %+v", allowed, *p)
	}
}
