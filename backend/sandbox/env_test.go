package sandbox

import (
	"strings"
	"testing"

	"github.com/enarx-go/enarx/backend"
)

// envCfg is an Enarx.toml with an [env] for the keep.Options.Env tests.
const envCfg = "[[files]]\nkind = \"null\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \"stderr\"\n[env]\nVAR1 = \"var1\"\n"

// TestOptionsEnvNilAndSandbox: keep.Options.Env reaches the workload after
// Enarx.toml's [env] on both backends, the file's value wins a clash, the
// last of a repeated name counts, and bad entries are refused with the
// same error on both.
func TestOptionsEnvNilAndSandbox(t *testing.T) {
	wasm := build(t, "wasiargs")
	env := []string{"HOST1=a", "VAR1=from the host", "HOST1=b", "EMPTY=", "WITH=eq=sign"}
	want := "arg main.wasm\nenv FD_COUNT=3\nenv FD_NAMES=null:stdout:stderr\nenv VAR1=var1\nenv HOST1=b\nenv EMPTY=\nenv WITH=eq=sign\n"
	for _, b := range []backend.Backend{backend.Nil{}, Backend{}} {
		if r := runWithEnv(t, b, wasm, envCfg, nil, env); r.code != 0 || r.err != "" || r.stdout != want {
			t.Errorf("%s: code %d err %q stdout %q stderr %.300q; want stdout %q", b.Name(), r.code, r.err, r.stdout, r.stderr, want)
		}
		for _, bad := range []struct {
			env  []string
			want string
		}{
			{[]string{"=value"}, "is not NAME=value"},
			{[]string{"NOEQUALS"}, "is not NAME=value"},
			{[]string{"A=b\x00c"}, "contains a NUL character"},
			{[]string{"BIG=" + strings.Repeat("x", 40<<10)}, "more than the 32768 bytes allowed"},
		} {
			if r := runWithEnv(t, b, wasm, envCfg, nil, bad.env); r.code != 1 || !strings.Contains(r.err, bad.want) || r.stdout != "" {
				t.Errorf("%s, env %.40q: code %d err %q stdout %q; want code 1 and %q", b.Name(), bad.env, r.code, r.err, r.stdout, bad.want)
			}
		}
	}
}
