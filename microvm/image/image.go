package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DefaultCmdline is the guest kernel command line. It is measured with the
// kernel and initrd on SEV-SNP, so it belongs to the image: launchers pass
// Manifest.Cmdline verbatim. panic=-1 and oops=panic turn any kernel failure
// into an immediate reboot, which QEMU's -no-reboot turns into an exit.
const DefaultCmdline = "console=ttyS0 panic=-1 oops=panic quiet"

// File names inside an image directory.
const (
	KernelFile   = "vmlinuz"
	InitrdFile   = "initrd.cpio"
	ManifestFile = "manifest.json"
)

// ManifestFormat is the version of the manifest layout written by Build.
const ManifestFormat = 1

// Paths inside the initrd.
const (
	InitPath        = "init"
	ModulesDir      = "modules"
	ModuleOrderPath = "modules/order"
)

// maxCmdline is COMMAND_LINE_SIZE on x86 less its NUL.
const maxCmdline = 2047

// Spec is what Build puts into an image.
type Spec struct {
	// Kernel is the bzImage to boot.
	Kernel string
	// Init is the static init binary (see BuildInit).
	Init string
	// Modules are the kernel modules to ship, in load order (see
	// ResolveModules); none for a kernel with everything built in.
	Modules []Module
	// Cmdline is the kernel command line; "" means DefaultCmdline.
	Cmdline string
	// InitBuild records how Init was built, for the manifest: for an init
	// from BuildInit, InitBuildEnv followed by InitBuildFlags. (The binary's
	// own build information omits -ldflags when -trimpath is set.)
	InitBuild []string
}

// Manifest is manifest.json.
type Manifest struct {
	Format        int              `json:"format"`
	Kernel        string           `json:"kernel"`
	KernelSHA256  string           `json:"kernel_sha256"`
	KernelRelease string           `json:"kernel_release"`
	Initrd        string           `json:"initrd"`
	InitrdSHA256  string           `json:"initrd_sha256"`
	Cmdline       string           `json:"cmdline"`
	Modules       []ManifestModule `json:"modules"`
	Init          InitInfo         `json:"init"`
}

// ManifestModule is one module in the initrd, listed in load order.
type ManifestModule struct {
	Name   string `json:"name"`
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
}

// Image is a built Keep image on disk whose files matched its manifest when
// it was loaded. Its paths are absolute.
type Image struct {
	Dir        string
	Manifest   Manifest
	KernelPath string
	InitrdPath string
}

// Build writes a Keep image into dir (created if needed): the kernel copied
// as vmlinuz, initrd.cpio and manifest.json (written last, so a directory
// with a manifest is complete). The initrd holds /init (mode 0755),
// /dev/console (character device 5:1, so the kernel has a console before
// devtmpfs is mounted), the directories /dev, /proc, /sys, /tmp and
// /modules, each module file as it is stored on the host (the guest loads it
// with finit_module and MODULE_INIT_COMPRESSED_FILE) and /modules/order with
// one file name per line in load order. Identical inputs give identical files.
func Build(dir string, spec Spec) (*Image, error) {
	cmdline := spec.Cmdline
	if cmdline == "" {
		cmdline = DefaultCmdline
	}
	if err := checkCmdline(cmdline); err != nil {
		return nil, err
	}
	if spec.Kernel == "" || spec.Init == "" {
		return nil, errors.New("keep image: a kernel and an init are required")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	release, err := KernelRelease(spec.Kernel)
	if err != nil {
		return nil, err
	}
	if err := CheckStaticELF(spec.Init); err != nil {
		return nil, err
	}
	initBytes, err := os.ReadFile(spec.Init)
	if err != nil {
		return nil, fmt.Errorf("reading init: %w", err)
	}
	info := InitInfo{SHA256: sha256Hex(initBytes), Size: int64(len(initBytes)), BuildCommand: spec.InitBuild}
	if err := readGoBuildInfo(spec.Init, &info); err != nil {
		return nil, fmt.Errorf("reading init build information: %w", err)
	}

	entries := []Entry{
		{Name: "dev", Mode: ModeDir | 0o755},
		{Name: "dev/console", Mode: ModeChar | 0o600, RdevMajor: 5, RdevMinor: 1},
		{Name: "proc", Mode: ModeDir | 0o755},
		{Name: "sys", Mode: ModeDir | 0o755},
		{Name: "tmp", Mode: ModeDir | 0o1777},
		{Name: ModulesDir, Mode: ModeDir | 0o755},
		{Name: InitPath, Mode: ModeRegular | 0o755, Data: initBytes},
	}
	var order strings.Builder
	mods := make([]ManifestModule, 0, len(spec.Modules))
	seen := make(map[string]bool)
	for _, m := range spec.Modules {
		if m.File != filepath.Base(m.File) || m.File == "order" || seen[m.File] {
			return nil, fmt.Errorf("keep image: module file name %q is not a unique plain file name", m.File)
		}
		seen[m.File] = true
		if r := m.release(); r != "" && r != release {
			return nil, fmt.Errorf("keep image: module %s is built for kernel %q, the kernel is %q", m.Path, r, release)
		}
		data, err := os.ReadFile(m.Path)
		if err != nil {
			return nil, fmt.Errorf("reading module: %w", err)
		}
		entries = append(entries, Entry{Name: ModulesDir + "/" + m.File, Mode: ModeRegular | 0o644, Data: data})
		mods = append(mods, ManifestModule{Name: m.Name, File: m.File, SHA256: sha256Hex(data)})
		order.WriteString(m.File + "\n")
	}
	entries = append(entries, Entry{Name: ModuleOrderPath, Mode: ModeRegular | 0o644, Data: []byte(order.String())})

	var initrd bytes.Buffer
	if err := WriteArchive(&initrd, entries); err != nil {
		return nil, fmt.Errorf("keep image: initrd: %w", err)
	}
	kernel, err := os.ReadFile(spec.Kernel)
	if err != nil {
		return nil, fmt.Errorf("reading kernel: %w", err)
	}
	m := Manifest{
		Format:        ManifestFormat,
		Kernel:        KernelFile,
		KernelSHA256:  sha256Hex(kernel),
		KernelRelease: release,
		Initrd:        InitrdFile,
		InitrdSHA256:  sha256Hex(initrd.Bytes()),
		Cmdline:       cmdline,
		Modules:       mods,
		Init:          info,
	}
	js, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	js = append(js, '\n')

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("keep image directory: %w", err)
	}
	// A manifest left from an earlier build would describe the old files
	// while the new ones are written: remove it first.
	if err := os.Remove(filepath.Join(dir, ManifestFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("keep image: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{KernelFile, kernel}, {InitrdFile, initrd.Bytes()}, {ManifestFile, js}} {
		if err := writeFileAtomic(filepath.Join(dir, f.name), f.data); err != nil {
			return nil, fmt.Errorf("keep image: %w", err)
		}
	}
	return &Image{Dir: dir, Manifest: m, KernelPath: filepath.Join(dir, KernelFile), InitrdPath: filepath.Join(dir, InitrdFile)}, nil
}

func checkCmdline(c string) error {
	if len(c) > maxCmdline {
		return fmt.Errorf("kernel command line is %d bytes, the limit is %d", len(c), maxCmdline)
	}
	for _, r := range c {
		if r < 0x20 || r > 0x7e {
			return fmt.Errorf("kernel command line %q: only printable ASCII is allowed", c)
		}
	}
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// maxManifestSize bounds manifest.json.
const maxManifestSize = 1 << 20

// Load reads dir/manifest.json and checks the SHA-256 of the kernel and the
// initrd it names. The Image's paths are absolute.
func Load(dir string) (*Image, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("keep image %s: %w", dir, err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("keep image %s: reading manifest: %w", dir, err)
	}
	if len(raw) > maxManifestSize {
		return nil, fmt.Errorf("keep image %s: %s is larger than %d bytes", dir, ManifestFile, maxManifestSize)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("keep image %s: %s: %w", dir, ManifestFile, err)
	}
	if m.Format != ManifestFormat {
		return nil, fmt.Errorf("keep image %s: manifest format %d, this enarx reads format %d; rebuild the image with `make keep-image`", dir, m.Format, ManifestFormat)
	}
	if err := checkCmdline(m.Cmdline); err != nil {
		return nil, fmt.Errorf("keep image %s: %w", dir, err)
	}
	img := &Image{Dir: dir, Manifest: m}
	for _, f := range []struct {
		name, sum string
		path      *string
	}{{m.Kernel, m.KernelSHA256, &img.KernelPath}, {m.Initrd, m.InitrdSHA256, &img.InitrdPath}} {
		if f.name == "" || f.name != filepath.Base(f.name) || f.name == "." || f.name == ".." || f.name == ManifestFile {
			return nil, fmt.Errorf("keep image %s: manifest names file %q; only a plain file name in the image directory is allowed", dir, f.name)
		}
		p := filepath.Join(dir, f.name)
		got, err := sha256File(p)
		if err != nil {
			return nil, fmt.Errorf("keep image %s: %w", dir, err)
		}
		if got != f.sum {
			return nil, fmt.Errorf("keep image %s: %s has SHA-256 %s, the manifest says %s; the file changed after the image was built: rebuild it with `make keep-image`", dir, f.name, got, f.sum)
		}
		*f.path = p
	}
	return img, nil
}

// EnvImage names the environment variable that points at an image directory.
const EnvImage = "ENARX_KEEP_IMAGE"

// SearchPaths lists where Locate looks for an image, in order, without
// $ENARX_KEEP_IMAGE: next to the running executable (bin/enarx → bin/keep),
// the user's data directory, then the system ones.
func SearchPaths() []string {
	var out []string
	if exe, err := os.Executable(); err == nil {
		if r, err := filepath.EvalSymlinks(exe); err == nil {
			exe = r
		}
		out = append(out, filepath.Join(filepath.Dir(exe), "keep"))
	}
	data := os.Getenv("XDG_DATA_HOME")
	if data == "" || !filepath.IsAbs(data) {
		if home, err := os.UserHomeDir(); err == nil {
			data = filepath.Join(home, ".local", "share")
		} else {
			data = ""
		}
	}
	if data != "" {
		out = append(out, filepath.Join(data, "enarx", "keep"))
	}
	return append(out, "/usr/local/share/enarx/keep", "/usr/share/enarx/keep")
}

// Locate finds and loads the Keep image: the directory $ENARX_KEEP_IMAGE
// names when it is set, else the first of SearchPaths that has a
// manifest.json. An image that is found but fails Load is an error, not a
// reason to look further.
func Locate() (*Image, error) {
	if d := os.Getenv(EnvImage); d != "" {
		img, err := Load(d)
		if err != nil {
			return nil, fmt.Errorf("%s=%s: %w", EnvImage, d, err)
		}
		return img, nil
	}
	paths := SearchPaths()
	for _, d := range paths {
		if _, err := os.Stat(filepath.Join(d, ManifestFile)); err == nil {
			return Load(d)
		}
	}
	return nil, fmt.Errorf("no Keep image found (looked for %s in %s, and %s is not set); build one with `make keep-image` in the enarx source tree (it writes bin/keep next to bin/enarx), or point %s at an image directory",
		ManifestFile, strings.Join(paths, ", "), EnvImage, EnvImage)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
