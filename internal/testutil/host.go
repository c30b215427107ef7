package testutil

import (
	"fmt"
	"os"
	"testing"
)

// NeedHost is how a test gives up for a missing host feature (no seccomp,
// no user namespaces, no Landlock, no memfd, …): it skips, except under CI
// (CI=true), where every feature the tests use must be present, so a
// missing one fails the test instead of passing silently. Hardware the CI
// machine cannot have (a TEE) is not a host feature: skip for it with
// t.Skip.
func NeedHost(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("CI=true, and the host lacks what this test needs: %s", msg)
	}
	t.Skip(msg)
}

// InCI reports whether the tests run under CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }
