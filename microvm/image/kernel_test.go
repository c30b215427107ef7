package image

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseKernelRelease(t *testing.T) {
	rel, err := ParseKernelRelease(fakeBzImage("6.12.118+deb12-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP", nil))
	if err != nil || rel != "6.12.118+deb12-cloud-amd64" {
		t.Errorf("got %q, %v", rel, err)
	}
	old := fakeBzImage("6.1.0", nil)
	old[0x206] = 0x01
	old[0x207] = 0x01
	noPtr := fakeBzImage("6.1.0", nil)
	noPtr[0x20e], noPtr[0x20f] = 0, 0
	outside := fakeBzImage("6.1.0", nil)
	outside[0x20f] = 0x7f
	for name, in := range map[string][]byte{
		"empty":        nil,
		"no HdrS":      make([]byte, 4096),
		"protocol 1.x": old,
		"no version":   noPtr,
		"outside":      outside,
		"empty string": fakeBzImage("", nil),
		"control char": fakeBzImage("6.1\x01", nil),
	} {
		if rel, err := ParseKernelRelease(in); err == nil {
			t.Errorf("%s: accepted, release %q", name, rel)
		}
	}
}

func TestKernelReleaseInstalled(t *testing.T) {
	k := requireInstalledKernel(t)
	if want := strings.TrimPrefix(filepath.Base(k.Path), "vmlinuz-"); k.Release != want {
		t.Errorf("release %q, file name says %q", k.Release, want)
	}
	if k.ModulesDir != filepath.Join(DefaultModulesDir, k.Release) {
		t.Errorf("modules dir %s", k.ModulesDir)
	}
}

func TestVersionLess(t *testing.T) {
	sorted := []string{
		"vmlinuz-6.12.9+deb12-cloud-amd64",
		"vmlinuz-6.12.38+deb12-cloud-amd64",
		"vmlinuz-6.12.107+deb12-cloud-amd64",
		"vmlinuz-6.12.118+deb12-cloud-amd64",
		"vmlinuz-6.12.118+deb13-cloud-amd64",
	}
	for i := range sorted {
		for j := range sorted {
			if got := versionLess(sorted[i], sorted[j]); got != (i < j) {
				t.Errorf("versionLess(%s, %s) = %v", sorted[i], sorted[j], got)
			}
		}
	}
}

func TestFindKernel(t *testing.T) {
	boot, mods := t.TempDir(), t.TempDir()
	if _, err := FindKernel(boot, mods); err == nil || !strings.Contains(err.Error(), kernelPackageHint) {
		t.Errorf("no kernel: %v", err)
	}
	for _, r := range []string{"6.12.9+deb12-cloud-amd64", "6.12.118+deb12-cloud-amd64", "6.12.38+deb12-cloud-amd64"} {
		if err := os.WriteFile(filepath.Join(boot, "vmlinuz-"+r), fakeBzImage(r+" (x) #1", nil), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := FindKernel(boot, mods); err == nil || !strings.Contains(err.Error(), "no modules directory") {
		t.Errorf("no modules: %v", err)
	}
	if err := os.Mkdir(filepath.Join(mods, "6.12.118+deb12-cloud-amd64"), 0o755); err != nil {
		t.Fatal(err)
	}
	k, err := FindKernel(boot, mods)
	if err != nil {
		t.Fatal(err)
	}
	if k.Release != "6.12.118+deb12-cloud-amd64" || k.Path != filepath.Join(boot, "vmlinuz-6.12.118+deb12-cloud-amd64") {
		t.Errorf("picked %+v, want the newest (118)", k)
	}
	// A file whose name and header disagree is refused.
	if err := os.WriteFile(filepath.Join(boot, "vmlinuz-6.12.200+deb12-cloud-amd64"), fakeBzImage("6.12.1 (x)", nil), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := FindKernel(boot, mods); err == nil || !strings.Contains(err.Error(), "reports release") {
		t.Errorf("mismatch: %v", err)
	}
}
