package platform_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/backend/microvm"
	_ "github.com/enarx-go/enarx/backend/snp"
	_ "github.com/enarx-go/enarx/backend/tdx"
	"github.com/enarx-go/enarx/internal/platform"
	"github.com/enarx-go/enarx/microvm/image"
	"github.com/enarx-go/enarx/microvm/vmm/qemu"
)

// On this machine, whatever it has: `enarx platform info` passes a backend
// exactly when `enarx run --backend NAME` would accept it (available and
// configured). Run with and without software emulation, with and without
// a Keep image.
func TestReportAgreesWithBackends(t *testing.T) {
	img := platform.WriteTestImage(t)
	missing := filepath.Join(t.TempDir(), "no-image")
	cases := []struct {
		name, accel, image string
	}{
		{"Image", "", img},
		{"ImageTCG", "tcg", img},
		{"NoImageTCG", "tcg", missing},
		{"NoImage", "", missing},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(microvm.EnvAccel, c.accel)
			t.Setenv(image.EnvImage, c.image)
			r := platform.Collect("v", platform.HostEnv())
			for _, name := range []string{microvm.NameKVM, microvm.NameSEV, microvm.NameTDX, "snp", "tdx"} {
				b, err := backend.Lookup(name)
				if err != nil {
					t.Fatal(err)
				}
				want := b.Available() && b.Configured() == nil
				var got *platform.Backend
				for i := range r.Backends {
					if r.Backends[i].Name == name {
						got = &r.Backends[i]
					}
				}
				if got == nil {
					t.Fatalf("no %s in the report", name)
				}
				if got.Pass() != want {
					t.Errorf("%s: the report says %v, the backend %v (available %v, configured %v): %+v",
						name, got.Pass(), want, b.Available(), b.Configured(), *got)
				}
			}
		})
	}
	// Under emulation with an image and QEMU, kvm works here: the report
	// reads the variable the backend reads.
	if _, err := qemu.LookPath(nil); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and no QEMU: %v", err)
		}
		t.Skipf("no QEMU: %v", err)
	}
	t.Setenv(microvm.EnvAccel, "tcg")
	t.Setenv(image.EnvImage, img)
	for _, b := range platform.Collect("v", platform.HostEnv()).Backends {
		if b.Name == microvm.NameKVM && !b.Pass() {
			t.Errorf("kvm fails under %s=tcg with QEMU and an image: %+v", microvm.EnvAccel, b)
		}
	}
}
