package shim_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/backend/microvm"
	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/microvm/image"
	"github.com/enarx-go/enarx/microvm/image/kmodcomp"
	"github.com/enarx-go/enarx/microvm/vmm/qemu"
)

// TestContainerdMicroVM runs a Keep of the kvm backend through the shim: a
// microVM booted by the keep host (under QEMU's CPU emulation here, where
// there is no /dev/kvm: ENARX_VM_ACCEL=tcg in containerd's environment,
// which its shims inherit), with the Keep image built here as the microvm
// tests build it. Args, env and output cross the VM boundary too. (One
// boot: TCG makes each take seconds.)
func TestContainerdMicroVM(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a microVM")
	}
	if _, err := qemu.LookPath(nil); err != nil {
		testutil.NeedHost(t, "no QEMU: %v", err)
	}
	k, err := image.DefaultKernel()
	if err != nil {
		testutil.NeedHost(t, "no Keep kernel: %v", err)
	}
	dir := t.TempDir()
	init := filepath.Join(dir, "init")
	abs, err := filepath.Abs("../cmd/enarx-keep-init")
	if err != nil {
		t.Fatal(err)
	}
	if err := image.BuildStatic(context.Background(), abs, ".", init); err != nil {
		t.Fatal(err)
	}
	kmodcomp.Register(image.RegisterDecompressor) // the kernel's modules are compressed
	mods, err := image.ResolveModules(k.ModulesDir, k.Release, image.DefaultModules)
	if err != nil {
		t.Fatal(err)
	}
	keepImage := filepath.Join(dir, "keep")
	if _, err := image.Build(keepImage, image.Spec{Kernel: k.Path, Init: init, Modules: mods}); err != nil {
		t.Fatal(err)
	}
	d := startContainerdWith(t, "", "ENARX_KEEP_IMAGE="+keepImage, microvm.EnvAccel+"=tcg", microvm.EnvMemory+"=1024")
	img := d.importImage(workloadWasm(t), "")
	out := d.mustCtr(t, append(d.runArgs("kvm", img, "vm-hello", "--env", "GREETING=from the VM's spec"), "/main.wasm", "hello", "in a VM")...)
	if want := `Hello from a Keep: args=["main.wasm" "hello" "in a VM"] GREETING="from the VM's spec"`; !strings.Contains(out, want) {
		t.Errorf("hello: %q, want %q", out, want)
	}
}
