package shim

import (
	"slices"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/config"
	"github.com/enarx-go/enarx/internal/testutil"
)

const tomlWithEnv = `args = ["--flag"]
steward_ca_unused_key = 1

[env]
GREETING = "from the owner"
B = "x"

[[files]]
kind = "stdin"
[[files]]
kind = "stdout"
[[files]]
name = "ingest"
kind = "listen"
prot = "tcp"
port = 8080
`

const tomlNoEnv = `# no env here
[[files]]
kind = "stdout"`

func TestMergeEnv(t *testing.T) {
	oci := []string{"PATH=/usr/bin", "GREETING=from the host", "Q=\"quoted\\\" \x01ctl ünï"}
	for _, tc := range []struct {
		name string
		raw  string
		want []config.EnvVar
	}{
		{"no Enarx.toml", "", []config.EnvVar{{Name: "PATH", Value: "/usr/bin"}, {Name: "GREETING", Value: "from the host"}, {Name: "Q", Value: "\"quoted\\\" \x01ctl ünï"}}},
		{"Enarx.toml without env", tomlNoEnv, []config.EnvVar{{Name: "PATH", Value: "/usr/bin"}, {Name: "GREETING", Value: "from the host"}, {Name: "Q", Value: "\"quoted\\\" \x01ctl ünï"}}},
		{"Enarx.toml with env", tomlWithEnv, []config.EnvVar{{Name: "GREETING", Value: "from the owner"}, {Name: "B", Value: "x"}, {Name: "PATH", Value: "/usr/bin"}, {Name: "Q", Value: "\"quoted\\\" \x01ctl ünï"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var raw []byte
			var cfg *config.Config
			if tc.raw != "" {
				raw = []byte(tc.raw)
				var err error
				if cfg, err = config.Parse("Enarx.toml", raw); err != nil {
					t.Fatal(err)
				}
			}
			out, err := mergeEnv(raw, cfg, oci)
			if err != nil {
				t.Fatal(err)
			}
			got, err := config.Parse("Enarx.toml", out)
			if err != nil {
				t.Fatalf("merged config does not parse: %v\n%s", err, out)
			}
			if !slices.Equal(got.Env, tc.want) {
				t.Errorf("env %q, want %q", got.Env, tc.want)
			}
			orig := config.Default()
			if cfg != nil {
				orig = cfg
			}
			if !slices.EqualFunc(got.Files, orig.Files, func(a, b config.File) bool { return a.Kind == b.Kind && a.Name == b.Name && a.Port == b.Port }) ||
				!slices.Equal(got.Args, orig.Args) {
				t.Errorf("merging changed files or args: %+v %q, want %+v %q", got.Files, got.Args, orig.Files, orig.Args)
			}
			if tc.raw == tomlNoEnv && !strings.HasPrefix(string(out), tomlNoEnv) {
				t.Errorf("a config without env is not kept as the prefix:\n%s", out)
			}
		})
	}
	// Nothing to add: the image's bytes as they are (nil stays nil).
	cfg, _ := config.Parse("Enarx.toml", []byte(tomlWithEnv))
	if out, err := mergeEnv([]byte(tomlWithEnv), cfg, []string{"GREETING=ignored"}); err != nil || string(out) != tomlWithEnv {
		t.Errorf("no new names: %q, %v", out, err)
	}
	if out, err := mergeEnv(nil, nil, nil); err != nil || out != nil {
		t.Errorf("nothing at all: %q, %v", out, err)
	}
	for _, bad := range []string{"NOEQUALS", "=value", "A=\x00", "A=\xff"} {
		if _, err := mergeEnv(nil, nil, []string{bad}); err == nil {
			t.Errorf("env entry %q accepted", bad)
		}
	}
}

var mergeSeeds = [][]byte{[]byte(tomlWithEnv), []byte(tomlNoEnv), []byte("[env]\n"), []byte("env = {}\n"), []byte("args = [\"\"]\n")}

func TestMergeEnvSeeds(t *testing.T) { testutil.CheckSeedCorpus(t, "FuzzMergeEnv", mergeSeeds) }

// FuzzMergeEnv: for any Enarx.toml the config parser accepts, the merged
// file parses too, with the same fd table and args, the file's env first
// and then the container's other names, in order.
func FuzzMergeEnv(f *testing.F) {
	for _, s := range mergeSeeds {
		f.Add(s)
	}
	oci := []string{"PATH=/bin", "B=host", "NEW=\"\\\n\t\u2028"}
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, err := config.Parse("Enarx.toml", raw)
		if err != nil {
			return
		}
		out, err := mergeEnv(raw, cfg, oci)
		if err != nil {
			t.Fatalf("merge of a valid config failed: %v", err)
		}
		got, err := config.Parse("Enarx.toml", out)
		if err != nil {
			t.Fatalf("merged config does not parse: %v\n%s", err, out)
		}
		want := slices.Clone(cfg.Env)
		have := map[string]bool{}
		for _, e := range want {
			have[e.Name] = true
		}
		for _, kv := range oci {
			n, v, _ := strings.Cut(kv, "=")
			if !have[n] {
				want = append(want, config.EnvVar{Name: n, Value: v})
			}
		}
		if !slices.Equal(got.Env, want) || !slices.Equal(got.Args, cfg.Args) || len(got.Files) != len(cfg.Files) ||
			got.Steward != cfg.Steward || got.StewardCA != cfg.StewardCA {
			t.Fatalf("merged config differs:\n%s", out)
		}
		for i := range got.Files {
			a, b := got.Files[i], cfg.Files[i]
			if a.Kind != b.Kind || a.Name != b.Name || a.Prot != b.Prot || a.Addr != b.Addr || a.Port != b.Port || a.Host != b.Host {
				t.Fatalf("files[%d] differs: %+v vs %+v\n%s", i, a, b, out)
			}
		}
	})
}
