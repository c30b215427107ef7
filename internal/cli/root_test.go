package cli

import (
	"strings"
	"testing"
)

// TestUsageExitStatus: a command line enarx does not accept exits with
// status 2, a run that fails with 1, whatever the error's words.
func TestUsageExitStatus(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"bogus"}, 2, `unknown command "bogus" for "enarx"`},
		{[]string{"--bogus"}, 2, "unknown flag: --bogus"},
		{[]string{"run", "-z", "x.wasm"}, 2, "unknown shorthand flag"},
		{[]string{"run", "--no-cache=maybe", "x.wasm"}, 2, `invalid argument "maybe"`},
		{[]string{"run"}, 2, "accepts a MODULE.wasm argument"},
		{[]string{"run", "a.wasm", "b"}, 2, `after "--"`},
		{[]string{"config", "init", "extra"}, 2, `unknown command "extra"`},
		{[]string{"--log-level"}, 2, "flag needs an argument"},
		{[]string{"run", "--backend", "nil", "/nonexistent/accepts .wasm"}, 1, "reading the module"},
	} {
		code, _, stderr := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("enarx %s: exit %d, stderr %q; want %d and %q", strings.Join(c.args, " "), code, stderr, c.code, c.want)
		}
	}
	// Execute's unknown-command rule rests on the root running nothing.
	if NewRoot().Runnable() {
		t.Fatal("the root command is runnable")
	}
}
