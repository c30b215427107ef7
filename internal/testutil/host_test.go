package testutil

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestNeedHost runs a test that calls NeedHost in a child process, with
// and without CI=true: it must skip without, and fail with.
func TestNeedHost(t *testing.T) {
	if os.Getenv("TESTUTIL_NEEDHOST_CHILD") == "1" {
		NeedHost(t, "no %s here", "widget")
		t.Fatal("NeedHost returned")
	}
	for _, ci := range []string{"", "true"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestNeedHost$", "-test.v")
		cmd.Env = append(os.Environ(), "TESTUTIL_NEEDHOST_CHILD=1", "CI="+ci)
		out, err := cmd.CombinedOutput()
		switch {
		case ci == "" && (err != nil || !strings.Contains(string(out), "--- SKIP") || !strings.Contains(string(out), "no widget here")):
			t.Errorf("without CI: %v\n%s", err, out)
		case ci == "true" && (err == nil || !strings.Contains(string(out), "--- FAIL") || !strings.Contains(string(out), "CI=true, and the host lacks what this test needs: no widget here")):
			t.Errorf("with CI=true: %v\n%s", err, out)
		}
	}
}
