package shim

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// FuzzParsePackage: ENARX_PACKAGE comes from the image or the pod spec.
// Whatever it holds, parsePackage does not panic; what it accepts has a
// host and prints to a spec that parses to the same package; a scheme
// other than https is never accepted.
func FuzzParsePackage(f *testing.F) {
	f.Fuzz(func(t *testing.T, in string) {
		p, err := parsePackage(in)
		if err != nil {
			if !strings.Contains(err.Error(), PackageEnv) {
				t.Fatalf("%q: error %q does not name %s", in, err, PackageEnv)
			}
			return
		}
		if scheme, _, ok := strings.Cut(in, "://"); ok && !strings.EqualFold(scheme, "https") {
			t.Fatalf("%q accepted with scheme %q", in, scheme)
		}
		if p.Host == "" {
			t.Fatalf("%q accepted without a host", in)
		}
		again, err := parsePackage(p.String())
		if err != nil || again.String() != p.String() {
			t.Fatalf("%q → %q → %q, %v", in, p.String(), again.String(), err)
		}
	})
}

// TestPackageOf: the last ENARX_PACKAGE entry counts (the pod's env
// follows the image's); a name that only starts alike does not.
func TestPackageOf(t *testing.T) {
	for _, c := range []struct {
		env  []string
		want string
		ok   bool
	}{
		{nil, "", false},
		{[]string{"PATH=/bin", "ENARX_PACKAGES=x"}, "", false},
		{[]string{"ENARX_PACKAGE=h/u/r:1.0.0", "ENARX_PACKAGE=h/u/r:2.0.0"}, "h/u/r:2.0.0", true},
		{[]string{"ENARX_PACKAGE="}, "", true},
	} {
		got, ok := packageOf(&specs.Spec{Process: &specs.Process{Env: c.env}})
		if got != c.want || ok != c.ok {
			t.Errorf("%q: got %q %v, want %q %v", c.env, got, ok, c.want, c.ok)
		}
	}
	if _, ok := packageOf(&specs.Spec{}); ok {
		t.Error("a spec without a process names a package")
	}
	if _, err := parsePackage(""); err == nil {
		t.Error("an empty ENARX_PACKAGE is accepted")
	}
}
