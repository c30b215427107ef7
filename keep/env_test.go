package keep

import (
	"slices"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/config"
)

func TestValidateEnv(t *testing.T) {
	many := make([]string, MaxEnvEntries+1)
	for i := range many {
		many[i] = "A=b"
	}
	for _, tc := range []struct {
		env  []string
		want string // "" = accepted
	}{
		{nil, ""},
		{[]string{"A=", "B=c=d", "UTF8=é"}, ""},
		{[]string{"=x"}, "is not NAME=value"},
		{[]string{"A"}, "is not NAME=value"},
		{[]string{"A=\x00"}, "NUL"},
		{[]string{"A\x00=b"}, "NUL"},
		{[]string{"A=" + strings.Repeat("x", MaxEnvBytes)}, "bytes allowed"},
		{many, "entries, more than"},
	} {
		err := ValidateEnv(tc.env)
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ValidateEnv(%.40q) = %v, want %q", tc.env, err, tc.want)
		}
	}
}

func TestEnvironOrder(t *testing.T) {
	cfg := config.Default()
	cfg.Env = []config.EnvVar{{Name: "B", Value: "file"}, {Name: "A", Value: "1"}}
	got := environ(cfg, []string{"C=x", "B=host", "C=y", "D=a=b"})
	want := []string{"FD_COUNT=3", "FD_NAMES=stdin:stdout:stderr", "B=file", "A=1", "C=y", "D=a=b"}
	if !slices.Equal(got, want) {
		t.Errorf("environ = %q, want %q", got, want)
	}
}

// TestEnvironHostCannotSetFDNames: the host's env cannot add a second
// FD_COUNT or FD_NAMES, which describe the Enarx.toml [[files]] the Keep's
// certificate covers (a workload reading environ last-wins would take the
// host's fd map).
func TestEnvironHostCannotSetFDNames(t *testing.T) {
	cfg := config.Default()
	cfg.Env = []config.EnvVar{{Name: "FD_COUNT", Value: "7"}}
	got := environ(cfg, []string{"FD_NAMES=stdout:stdin:stderr", "FD_COUNT=9", "X=1"})
	want := []string{"FD_COUNT=3", "FD_NAMES=stdin:stdout:stderr", "FD_COUNT=7", "X=1"}
	if !slices.Equal(got, want) {
		t.Errorf("environ = %q, want %q", got, want)
	}
}

// FuzzValidateEnv: whatever ValidateEnv accepts (entries split from the
// input at '\n') gives an environment of NAME=value entries without NUL,
// each name once among the host's, within the bounds.
func FuzzValidateEnv(f *testing.F) {
	f.Add("A=b\nC=d")
	f.Add("=x")
	f.Add("A=b\x00")
	f.Add("A=1\nA=2\nFD_COUNT=9")
	f.Fuzz(func(t *testing.T, s string) {
		env := strings.Split(s, "\n")
		if err := ValidateEnv(env); err != nil {
			return
		}
		if len(env) > MaxEnvEntries {
			t.Fatalf("accepted %d entries", len(env))
		}
		seen := map[string]bool{}
		out := environ(config.Default(), env)
		for _, kv := range out[2:] {
			name, _, ok := strings.Cut(kv, "=")
			if !ok || name == "" || strings.IndexByte(kv, 0) >= 0 || seen[name] {
				t.Fatalf("environ gave %q from accepted %q", kv, env)
			}
			seen[name] = true
		}
	})
}
