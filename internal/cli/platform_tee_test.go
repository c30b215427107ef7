package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/enarx-go/enarx/attestation/policy"
)

func runCmd(c *cobra.Command, args ...string) ([]byte, error) {
	var out bytes.Buffer
	c.SetArgs(args)
	c.SetOut(&out)
	c.SetErr(&out)
	err := c.Execute()
	return out.Bytes(), err
}

// The policy that `platform snp|tdx measurement --emulated` prints must load
// and trust the emulated root.
func TestMeasurementPrintsLoadablePolicy(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	for name, cmd := range map[string]func() ([]byte, error){
		"snp": func() ([]byte, error) { return runCmd(newPlatformSNPCmd(&globals{}), "measurement", "--emulated") },
		"tdx": func() ([]byte, error) { return runCmd(newPlatformTDXCmd(&globals{}), "measurement", "--emulated") },
	} {
		out, err := cmd()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !strings.Contains(string(out), "LOCAL TEST ROOT") {
			t.Errorf("%s: output does not warn that the root is a test root:\n%s", name, out)
		}
		p, err := policy.Parse(out)
		if err != nil {
			t.Fatalf("%s: printed policy does not load: %v\n%s", name, err, out)
		}
		if len(p.EmulatedRoots()) != 1 {
			t.Fatalf("%s: printed policy trusts %v", name, p.EmulatedRoots())
		}
	}
}
