package image

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Default kernel: Debian's 6.12 cloud kernel, the smallest Debian kernel with
// virtio-pci and virtio-console built in and the SEV-SNP and TDX guest
// drivers as modules.
const (
	DefaultBootDir    = "/boot"
	DefaultModulesDir = "/lib/modules"
	defaultKernelGlob = "vmlinuz-6.12.*-cloud-amd64"
	kernelPackageHint = "apt-get install linux-image-6.12-cloud-amd64"
)

// Kernel is a guest kernel and the modules built for it.
type Kernel struct {
	// Path is the bzImage.
	Path string
	// Release is its release string (uname -r), read from the bzImage.
	Release string
	// ModulesDir is /lib/modules/<Release>, or "" for a kernel used without
	// modules.
	ModulesDir string
}

// DefaultKernel finds the newest installed Debian 6.12 cloud kernel
// (/boot/vmlinuz-6.12.*-cloud-amd64) and its /lib/modules directory.
func DefaultKernel() (*Kernel, error) { return FindKernel(DefaultBootDir, DefaultModulesDir) }

// FindKernel is DefaultKernel with other directories in place of /boot and
// /lib/modules.
func FindKernel(bootDir, modulesRoot string) (*Kernel, error) {
	matches, err := filepath.Glob(filepath.Join(bootDir, defaultKernelGlob))
	if err != nil {
		return nil, err
	}
	if len(matches) == 0 {
		return nil, fmt.Errorf("no Debian 6.12 cloud kernel in %s (looked for %s); install one with `%s`, or pass a kernel and its modules directory explicitly",
			bootDir, defaultKernelGlob, kernelPackageHint)
	}
	sort.Slice(matches, func(i, j int) bool {
		return versionLess(filepath.Base(matches[i]), filepath.Base(matches[j]))
	})
	p := matches[len(matches)-1]
	release, err := KernelRelease(p)
	if err != nil {
		return nil, err
	}
	if want := strings.TrimPrefix(filepath.Base(p), "vmlinuz-"); release != want {
		return nil, fmt.Errorf("kernel %s reports release %q, its file name says %q", p, release, want)
	}
	md := filepath.Join(modulesRoot, release)
	if st, err := os.Stat(md); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("kernel %s has no modules directory %s; reinstall it with `%s`", p, md, kernelPackageHint)
	}
	return &Kernel{Path: p, Release: release, ModulesDir: md}, nil
}

// KernelRelease reads the release string (the first word of the kernel
// version, as uname -r prints it) from an x86 bzImage's setup header.
func KernelRelease(bzImage string) (string, error) {
	f, err := os.Open(bzImage)
	if err != nil {
		return "", fmt.Errorf("kernel image: %w", err)
	}
	defer f.Close()
	// The setup code, which holds the version string, is at most
	// (255 + 1) * 512 bytes.
	buf := make([]byte, 256*512)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return "", fmt.Errorf("kernel image %s: %w", bzImage, err)
	}
	rel, err := ParseKernelRelease(buf[:n])
	if err != nil {
		return "", fmt.Errorf("kernel image %s: %w", bzImage, err)
	}
	return rel, nil
}

// ParseKernelRelease returns the release from the start of an x86 boot
// image: the "HdrS" setup header (boot protocol 2.00 or later) points at a
// NUL-terminated version string ("6.12.118+deb12-cloud-amd64 (…) #1 SMP …")
// inside the setup code; the release is its first word, which must be
// printable ASCII.
func ParseKernelRelease(b []byte) (string, error) {
	const (
		hdrMagicOff  = 0x202
		protoOff     = 0x206
		versionOff   = 0x20e
		setupSectOff = 0x1f1
	)
	if len(b) < versionOff+2 || string(b[hdrMagicOff:hdrMagicOff+4]) != "HdrS" {
		return "", errors.New("not an x86 bzImage (no HdrS setup header)")
	}
	if proto := binary.LittleEndian.Uint16(b[protoOff:]); proto < 0x200 {
		return "", fmt.Errorf("boot protocol %#x is older than 2.00", proto)
	}
	ptr := binary.LittleEndian.Uint16(b[versionOff:])
	if ptr == 0 {
		return "", errors.New("setup header has no kernel version string")
	}
	setupEnd := (int(b[setupSectOff]) + 1) * 512
	start := int(ptr) + 0x200
	if start >= setupEnd || start >= len(b) {
		return "", fmt.Errorf("kernel version pointer %#x is outside the setup code", ptr)
	}
	end := start
	for end < len(b) && end < setupEnd && b[end] != 0 && b[end] != ' ' {
		end++
	}
	rel := b[start:end]
	if len(rel) == 0 || len(rel) > 64 {
		return "", fmt.Errorf("kernel version string at %#x has no release of 1 to 64 characters", start)
	}
	for _, c := range rel {
		if c < 0x21 || c > 0x7e {
			return "", fmt.Errorf("kernel release %q is not printable ASCII", rel)
		}
	}
	return string(rel), nil
}

// versionLess compares file names such as vmlinuz-6.12.9+deb12-cloud-amd64 and
// vmlinuz-6.12.118+deb12-cloud-amd64 with runs of digits compared as numbers.
func versionLess(a, b string) bool {
	for a != "" && b != "" {
		da, ra := splitRun(a)
		db, rb := splitRun(b)
		if isDigit(da[0]) && isDigit(db[0]) {
			na, nb := strings.TrimLeft(da, "0"), strings.TrimLeft(db, "0")
			if len(na) != len(nb) {
				return len(na) < len(nb)
			}
			if na != nb {
				return na < nb
			}
		} else if da != db {
			return da < db
		}
		a, b = ra, rb
	}
	return len(a) < len(b)
}

func splitRun(s string) (run, rest string) {
	d := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == d {
		i++
	}
	return s[:i], s[i:]
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
