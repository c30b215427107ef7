package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/microvm/vmm/qemu"
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
	for _, want := range []string{"sgx", "sev", "kvm", "tdx-vm", "snp", "tdx", "sandbox", "nil"} {
		if !seen[want] {
			t.Errorf("platform info lacks backend %s", want)
		}
	}
	code, out, _ = runCLI(t, "platform", "info")
	if code != 0 || !strings.HasPrefix(out, "Enarx version ") || !strings.Contains(out, "✔ Backend: nil\n") || strings.Contains(out, "\x1b[") {
		t.Fatalf("platform info text (%d):\n%s", code, out)
	}
}

// On this machine: the microVM backends are in the report, with the
// release of the QEMU they would launch, read here from its own
// --version output.
func TestPlatformInfoMicroVMs(t *testing.T) {
	bin := os.Getenv(qemu.EnvQEMU)
	if bin == "" {
		bin = qemu.Binary
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and no QEMU (%s --version: %v)", bin, err)
		}
		t.Skipf("no QEMU: %s --version: %v", bin, err)
	}
	m := regexp.MustCompile(`QEMU emulator version (\d+\.\d+\.\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("%s --version: %q", bin, out)
	}
	version := string(m[1])
	t.Setenv("ENARX_VM_ACCEL", "")

	code, js, e := runCLI(t, "platform", "info", "--json")
	if code != 0 {
		t.Fatalf("platform info --json: %d %s", code, e)
	}
	var r struct {
		Backends []struct {
			Backend string `json:"backend"`
			Data    []struct {
				Name string  `json:"name"`
				Pass bool    `json:"pass"`
				Info *string `json:"info"`
				Mesg *string `json:"mesg"`
			} `json:"data"`
			Config []struct {
				Name string  `json:"name"`
				Pass bool    `json:"pass"`
				Info *string `json:"info"`
				Mesg *string `json:"mesg"`
			} `json:"config"`
		} `json:"backends"`
	}
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		t.Fatal(err)
	}
	qemuRows := map[string]string{"kvm": "QEMU", "sev": "QEMU 9.1 or newer", "tdx-vm": "QEMU 10.1 or newer"}
	for _, b := range r.Backends {
		name, ok := qemuRows[b.Backend]
		if !ok {
			continue
		}
		delete(qemuRows, b.Backend)
		found := false
		for _, c := range b.Config {
			if c.Name == name {
				found = true
				if c.Info == nil || !strings.HasPrefix(*c.Info, version+" (") {
					t.Errorf("%s: %s row %+v, want QEMU %s", b.Backend, name, c, version)
				}
			}
		}
		if !found {
			t.Errorf("%s: no %q row in %+v", b.Backend, name, b.Config)
		}
		// /dev/kvm is probed as the backend probes it.
		_, kvmErr := os.Stat("/dev/kvm")
		for _, d := range b.Data {
			if d.Info != nil && *d.Info == "/dev/kvm" && d.Pass && kvmErr != nil {
				t.Errorf("%s: /dev/kvm row passes without /dev/kvm", b.Backend)
			}
		}
	}
	if len(qemuRows) != 0 {
		t.Errorf("platform info lacks %v", qemuRows)
	}
	code, text, _ := runCLI(t, "platform", "info")
	for _, want := range []string{" Backend: kvm\n", " Backend: sev\n", " Backend: tdx-vm\n", "QEMU: " + version + " ("} {
		if code != 0 || !strings.Contains(text, want) {
			t.Errorf("platform info text lacks %q:\n%s", want, text)
		}
	}
}
