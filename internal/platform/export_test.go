package platform

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/enarx-go/enarx/microvm/image"
)

// WriteTestImage writes a Keep image directory that image.Load accepts: a
// manifest whose SHA-256 sums match its kernel and initrd files. (Load
// checks only the manifest and the sums; the files are never booted here.)
func WriteTestImage(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	kernel := []byte("a kernel: image.Load checks only its SHA-256")
	initrd := []byte("070701 an initrd: image.Load checks only its SHA-256")
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	m := image.Manifest{
		Format:        image.ManifestFormat,
		Kernel:        image.KernelFile,
		KernelSHA256:  sum(kernel),
		KernelRelease: "6.12.0-enarx-test",
		Initrd:        image.InitrdFile,
		InitrdSHA256:  sum(initrd),
		Cmdline:       image.DefaultCmdline,
	}
	js, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{image.KernelFile: kernel, image.InitrdFile: initrd, image.ManifestFile: js} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
