package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

// --labels prints one enarx.dev/backend.NAME=true|false line per backend
// of --json's report, with the same verdicts; it excludes --json.
func TestPlatformInfoLabels(t *testing.T) {
	code, out, e := runCLI(t, "platform", "info", "--labels")
	if code != 0 {
		t.Fatalf("platform info --labels: %d %s", code, e)
	}
	code, js, e := runCLI(t, "platform", "info", "--json")
	if code != 0 {
		t.Fatalf("platform info --json: %d %s", code, e)
	}
	var r struct {
		Backends []struct {
			Backend string `json:"backend"`
			Pass    bool   `json:"pass"`
		} `json:"backends"`
	}
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	labels := map[string]bool{}
	for _, l := range lines {
		labels[l] = true
	}
	n := 0
	for _, b := range r.Backends {
		if strings.HasSuffix(b.Backend, "-emulated") {
			continue
		}
		n++
		want := "enarx.dev/backend." + b.Backend + "=false"
		if b.Pass {
			want = "enarx.dev/backend." + b.Backend + "=true"
		}
		if !labels[want] {
			t.Errorf("--labels lacks %s:\n%s", want, out)
		}
	}
	if len(lines) != n {
		t.Errorf("--labels printed %d lines for %d backends:\n%s", len(lines), n, out)
	}
	if code, _, e := runCLI(t, "platform", "info", "--labels", "--json"); code == 0 || !strings.Contains(e, "json") {
		t.Errorf("--labels with --json: status %d, %q", code, e)
	}
}
