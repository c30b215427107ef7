package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestPlatformInfo(t *testing.T) {
	code, out, e := runCLI(t, "platform", "info", "--json")
	if code != 0 {
		t.Fatalf("platform info --json: %d %s", code, e)
	}
	if strings.Contains(out, `"null"`) {
		t.Error(`JSON carries the string "null"`)
	}
	var r struct {
		Backends []struct {
			Backend string `json:"backend"`
			Pass    bool   `json:"pass"`
		} `json:"backends"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, b := range r.Backends {
		seen[b.Backend] = true
		if b.Backend == "nil" && !b.Pass {
			t.Error("nil backend does not pass")
		}
	}
	for _, want := range []string{"sgx", "sev", "kvm", "snp", "tdx", "sandbox", "nil"} {
		if !seen[want] {
			t.Errorf("platform info lacks backend %s", want)
		}
	}
	code, out, _ = runCLI(t, "platform", "info")
	if code != 0 || !strings.HasPrefix(out, "Enarx version ") || !strings.Contains(out, "✔ Backend: nil\n") || strings.Contains(out, "\x1b[") {
		t.Fatalf("platform info text (%d):\n%s", code, out)
	}
}
