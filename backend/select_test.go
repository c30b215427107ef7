package backend_test

import (
	"context"
	"errors"
	"testing"

	"github.com/enarx-go/enarx/backend"
)

type fake struct {
	name      string
	prot      backend.Protection
	available bool
	conf      error
}

func (f fake) Name() string                                    { return f.name }
func (f fake) Protection() backend.Protection                  { return f.prot }
func (f fake) Available() bool                                 { return f.available }
func (f fake) Configured() error                               { return f.conf }
func (fake) Run(context.Context, *backend.Launch) (int, error) { return 0, nil }

// explicit is available, but only when named (like kvm under TCG).
type explicit struct{ fake }

func (explicit) ExplicitOnly() bool { return true }

// reasoned is unavailable and says why.
type reasoned struct{ fake }

func (reasoned) Unavailable() error { return errors.New("/dev/kvm is missing") }

func init() {
	backend.Register(explicit{fake{name: "t-explicit", prot: backend.ProtectionTEE + 3, available: true}})
	backend.Register(reasoned{fake{name: "t-reasoned", prot: backend.ProtectionVM}})
	backend.Register(fake{name: "t-tee-missing", prot: backend.ProtectionTEE + 2})
	backend.Register(fake{name: "t-tee-misconfigured", prot: backend.ProtectionTEE + 1, available: true, conf: errors.New("no CRL cache")})
	backend.Register(fake{name: "t-sandbox", prot: backend.ProtectionSandbox, available: true})
}

func TestSelectImplicitNeedsAvailableAndConfigured(t *testing.T) {
	b, err := backend.Select("")
	if err != nil || b.Name() != "t-sandbox" {
		t.Fatalf("Select(\"\") = %v, %v; want t-sandbox (the misconfigured TEE and the explicit-only backend must be skipped)", b, err)
	}
	if b, err := backend.Select("t-explicit"); err != nil || b.Name() != "t-explicit" {
		t.Fatalf("Select(t-explicit) = %v, %v; an explicit-only backend must work when named", b, err)
	}
}

func TestSelectExplicitMessages(t *testing.T) {
	for name, want := range map[string]string{
		"nope":                "Keep backend identifier \"nope\" is unknown. This build's backends are t-explicit, t-tee-missing, t-tee-misconfigured, t-reasoned, t-sandbox, nil (most protective first); `enarx platform info` shows which of them this machine can run.",
		"sgx":                 "Keep backend identifier \"sgx\" is unknown. This build's backends are t-explicit, t-tee-missing, t-tee-misconfigured, t-reasoned, t-sandbox, nil (most protective first); `enarx platform info` shows which of them this machine can run. It lists SGX as upstream does, but this build has no SGX Keeps.",
		"t-tee-missing":       `Keep backend "t-tee-missing" is not available on this platform.`,
		"t-reasoned":          "Keep backend \"t-reasoned\" is not available on this platform (/dev/kvm is missing). Please check with `enarx platform info`.",
		"t-tee-misconfigured": "Keep backend \"t-tee-misconfigured\" is available on this platform, but the machine is misconfigured (no CRL cache). Please check with `enarx platform info`.",
	} {
		_, err := backend.Select(name)
		if err == nil || err.Error() != want {
			t.Errorf("Select(%q) = %v; want %q", name, err, want)
		}
	}
	if b, err := backend.Select("nil"); err != nil || b.Name() != "nil" {
		t.Errorf("Select(nil) = %v, %v", b, err)
	}
}
