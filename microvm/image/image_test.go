package image

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// goldenInitrdSHA256 is the SHA-256 of initrd.cpio built from the committed
// fixtures (testdata/init-fixture, configfs.ko and tsm.ko.xz from
// testdata/lib/modules). It changes only when the archive format or the
// image layout changes, which changes every Keep measurement: update it
// deliberately, and say so in the commit.
const goldenInitrdSHA256 = "a2b15dd97a99762b6967cf7a8db2561bc287bd344c8477b5ea6699d8e7d024c9"

func fixtureSpec(t *testing.T) Spec {
	t.Helper()
	ms, err := ResolveModules(fixtureModulesDir, fixtureRelease, []string{"tsm"})
	if err != nil {
		t.Fatal(err)
	}
	return Spec{Kernel: fixtureKernel, Init: fixtureInit, Modules: ms}
}

func TestGoldenInitrd(t *testing.T) {
	spec := fixtureSpec(t)
	var sums []string
	for _, procs := range []int{1, 2, 8} {
		prev := runtime.GOMAXPROCS(procs)
		dir := t.TempDir()
		img, err := Build(dir, spec)
		runtime.GOMAXPROCS(prev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := sha256File(img.InitrdPath)
		if err != nil {
			t.Fatal(err)
		}
		if got != img.Manifest.InitrdSHA256 {
			t.Errorf("manifest says %s, file is %s", img.Manifest.InitrdSHA256, got)
		}
		sums = append(sums, got)
	}
	if sums[0] != sums[1] || sums[1] != sums[2] {
		t.Errorf("builds differ: %v", sums)
	}
	if sums[0] != goldenInitrdSHA256 {
		t.Errorf("initrd.cpio SHA-256 %s, golden %s", sums[0], goldenInitrdSHA256)
	}
}

func TestBuildContents(t *testing.T) {
	dir := t.TempDir()
	img, err := Build(dir, fixtureSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(img.InitrdPath)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := ReadArchive(bytes.NewReader(raw), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	initBytes, _ := os.ReadFile(fixtureInit)
	configfs, _ := os.ReadFile(filepath.Join(fixtureModulesDir, "kernel/fs/configfs/configfs.ko"))
	tsm, _ := os.ReadFile(filepath.Join(fixtureModulesDir, "kernel/drivers/virt/coco/tsm.ko.xz"))
	want := []Entry{
		{Name: "dev", Mode: ModeDir | 0o755},
		{Name: "dev/console", Mode: ModeChar | 0o600, RdevMajor: 5, RdevMinor: 1},
		{Name: "init", Mode: ModeRegular | 0o755, Data: initBytes},
		{Name: "modules", Mode: ModeDir | 0o755},
		{Name: "modules/configfs.ko", Mode: ModeRegular | 0o644, Data: configfs},
		{Name: "modules/order", Mode: ModeRegular | 0o644, Data: []byte("configfs.ko\ntsm.ko.xz\n")},
		{Name: "modules/tsm.ko.xz", Mode: ModeRegular | 0o644, Data: tsm},
		{Name: "proc", Mode: ModeDir | 0o755},
		{Name: "sys", Mode: ModeDir | 0o755},
		{Name: "tmp", Mode: ModeDir | 0o1777},
	}
	var got []Entry
	for i, r := range recs {
		if r.Ino != uint32(i+1) || r.MTime != 0 || r.UID != 0 || r.GID != 0 {
			t.Errorf("%s: ino %d mtime %d uid %d gid %d", r.Name, r.Ino, r.MTime, r.UID, r.GID)
		}
		got = append(got, r.Entry)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("initrd entries\n%+v\nwant\n%+v", got, want)
	}

	m := img.Manifest
	kernel, _ := os.ReadFile(fixtureKernel)
	if m.Format != ManifestFormat || m.Kernel != KernelFile || m.Initrd != InitrdFile || m.Cmdline != DefaultCmdline ||
		m.KernelRelease != fixtureRelease || m.KernelSHA256 != sha256Hex(kernel) || m.Init.SHA256 != sha256Hex(initBytes) ||
		m.Init.Size != int64(len(initBytes)) || m.Init.GoVersion != "" {
		t.Errorf("manifest %+v", m)
	}
	wantMods := []ManifestModule{{"configfs", "configfs.ko", sha256Hex(configfs)}, {"tsm", "tsm.ko.xz", sha256Hex(tsm)}}
	if !reflect.DeepEqual(m.Modules, wantMods) {
		t.Errorf("manifest modules %+v, want %+v", m.Modules, wantMods)
	}
	if img.KernelPath != filepath.Join(dir, KernelFile) || img.InitrdPath != filepath.Join(dir, InitrdFile) || img.Dir != dir {
		t.Errorf("paths %+v", img)
	}
	if k, _ := os.ReadFile(img.KernelPath); !bytes.Equal(k, kernel) {
		t.Error("vmlinuz is not a copy of the kernel")
	}

	loaded, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(loaded, img) {
		t.Errorf("Load = %+v, Build returned %+v", loaded, img)
	}

	// A custom command line is recorded verbatim; a rebuild replaces the image.
	spec := fixtureSpec(t)
	spec.Cmdline = "console=ttyS0 tsc_early_khz=2000000"
	spec.Modules = nil
	img2, err := Build(dir, spec)
	if err != nil {
		t.Fatal(err)
	}
	if img2.Manifest.Cmdline != spec.Cmdline || len(img2.Manifest.Modules) != 0 {
		t.Errorf("rebuilt manifest %+v", img2.Manifest)
	}
	if l, err := Load(dir); err != nil || l.Manifest.InitrdSHA256 != img2.Manifest.InitrdSHA256 {
		t.Errorf("reload after rebuild: %v", err)
	}
}

func TestBuildRejects(t *testing.T) {
	tmp := t.TempDir()
	dyn := filepath.Join(tmp, "dyn")
	if err := os.WriteFile(dyn, fakeExecutable([]byte{0xc3}, "/lib64/ld-linux-x86-64.so.2"), 0o755); err != nil {
		t.Fatal(err)
	}
	wrong := fixtureSpec(t)
	wrong.Modules[0].Vermagic = "6.1.0-other SMP"
	dupe := fixtureSpec(t)
	dupe.Modules[1].File = dupe.Modules[0].File
	for name, tc := range map[string]struct {
		spec Spec
		want string
	}{
		"dynamic init":  {Spec{Kernel: fixtureKernel, Init: dyn}, "dynamically linked"},
		"init not ELF":  {Spec{Kernel: fixtureKernel, Init: fixtureKernel}, "not an ELF"},
		"kernel":        {Spec{Kernel: fixtureInit, Init: fixtureInit}, "bzImage"},
		"no kernel":     {Spec{Init: fixtureInit}, "required"},
		"cmdline":       {Spec{Kernel: fixtureKernel, Init: fixtureInit, Cmdline: "a\nb"}, "printable"},
		"long cmdline":  {Spec{Kernel: fixtureKernel, Init: fixtureInit, Cmdline: strings.Repeat("a", 2048)}, "limit"},
		"wrong release": {wrong, "built for kernel"},
		"module names":  {dupe, "unique"},
	} {
		out := filepath.Join(tmp, strings.ReplaceAll(name, " ", "-"))
		_, err := Build(out, tc.spec)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Build = %v, want an error containing %q", name, err, tc.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s: a failed Build created %s", name, out)
		}
	}
	// A real dynamically linked program from the host is refused too.
	if err := CheckStaticELF("/bin/sh"); err == nil || !strings.Contains(err.Error(), "PT_INTERP") {
		t.Errorf("CheckStaticELF(/bin/sh) = %v", err)
	}
}

func TestLoadDetectsChanges(t *testing.T) {
	build := func() string {
		dir := t.TempDir()
		if _, err := Build(dir, fixtureSpec(t)); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	editManifest := func(dir string, f func(m map[string]any)) {
		p := filepath.Join(dir, ManifestFile)
		raw, _ := os.ReadFile(p)
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		out, _ := json.Marshal(m)
		if err := os.WriteFile(p, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, tc := range map[string]struct {
		change func(dir string)
		want   string
	}{
		"initrd changed": {func(d string) {
			f, _ := os.OpenFile(filepath.Join(d, InitrdFile), os.O_APPEND|os.O_WRONLY, 0)
			f.Write([]byte{0})
			f.Close()
		}, "initrd.cpio has SHA-256"},
		"kernel changed": {func(d string) { os.WriteFile(filepath.Join(d, KernelFile), []byte("x"), 0o644) }, "vmlinuz has SHA-256"},
		"initrd missing": {func(d string) { os.Remove(filepath.Join(d, InitrdFile)) }, "no such file"},
		"no manifest":    {func(d string) { os.Remove(filepath.Join(d, ManifestFile)) }, "no such file"},
		"escaping name":  {func(d string) { editManifest(d, func(m map[string]any) { m["kernel"] = "../vmlinuz" }) }, "plain file name"},
		"future format":  {func(d string) { editManifest(d, func(m map[string]any) { m["format"] = 2 }) }, "format 2"},
		"unknown field":  {func(d string) { editManifest(d, func(m map[string]any) { m["extra"] = 1 }) }, "unknown field"},
		"not JSON":       {func(d string) { os.WriteFile(filepath.Join(d, ManifestFile), []byte("{"), 0o644) }, "manifest.json"},
	} {
		dir := build()
		tc.change(dir)
		_, err := Load(dir)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Load = %v, want an error containing %q", name, err, tc.want)
		}
	}
}

func TestLocate(t *testing.T) {
	for _, p := range SearchPaths() {
		if _, err := os.Stat(filepath.Join(p, ManifestFile)); err == nil {
			t.Skipf("an image is installed at %s; Locate's fallbacks cannot be tested here", p)
		}
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_DATA_HOME", "")
	t.Setenv(EnvImage, "")

	_, err := Locate()
	if err == nil || !strings.Contains(err.Error(), "make keep-image") || !strings.Contains(err.Error(), filepath.Join(home, ".local/share/enarx/keep")) ||
		!strings.Contains(err.Error(), "/usr/share/enarx/keep") {
		t.Errorf("no image: %v", err)
	}

	// ~/.local/share/enarx/keep
	dataImg := filepath.Join(home, ".local", "share", "enarx", "keep")
	if _, err := Build(dataImg, fixtureSpec(t)); err != nil {
		t.Fatal(err)
	}
	img, err := Locate()
	if err != nil || img.Dir != dataImg {
		t.Fatalf("Locate = %+v, %v; want %s", img, err, dataImg)
	}

	// $XDG_DATA_HOME replaces ~/.local/share.
	xdg := t.TempDir()
	t.Setenv("XDG_DATA_HOME", xdg)
	if _, err := Locate(); err == nil || !strings.Contains(err.Error(), filepath.Join(xdg, "enarx/keep")) {
		t.Errorf("XDG_DATA_HOME not used: %v", err)
	}
	xdgImg := filepath.Join(xdg, "enarx", "keep")
	if _, err := Build(xdgImg, fixtureSpec(t)); err != nil {
		t.Fatal(err)
	}
	if img, err := Locate(); err != nil || img.Dir != xdgImg {
		t.Errorf("Locate = %+v, %v; want %s", img, err, xdgImg)
	}

	// $ENARX_KEEP_IMAGE comes first, and a broken image there is an error.
	envImg := t.TempDir()
	if _, err := Build(envImg, fixtureSpec(t)); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvImage, envImg)
	if img, err := Locate(); err != nil || img.Dir != envImg || img.Manifest.Cmdline != DefaultCmdline {
		t.Errorf("Locate = %+v, %v; want %s", img, err, envImg)
	}
	os.WriteFile(filepath.Join(envImg, InitrdFile), []byte("changed"), 0o644)
	if _, err := Locate(); err == nil || !strings.Contains(err.Error(), EnvImage) || !strings.Contains(err.Error(), "initrd.cpio") {
		t.Errorf("broken image in %s: %v", EnvImage, err)
	}

	// A broken image in a search path is reported, not skipped.
	t.Setenv(EnvImage, "")
	os.WriteFile(filepath.Join(xdgImg, KernelFile), []byte("changed"), 0o644)
	if _, err := Locate(); err == nil || !strings.Contains(err.Error(), "vmlinuz") {
		t.Errorf("broken image in search path: %v", err)
	}
}

// tinyInitModule writes a small static Go program in its own module, the
// stand-in for cmd/enarx-keep-init where that does not exist yet.
func tinyInitModule(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	os.WriteFile(filepath.Join(d, "go.mod"), []byte("module example.com/keepinit\n\ngo 1.26\n"), 0o644)
	os.WriteFile(filepath.Join(d, "main.go"), []byte("package main\n\nimport \"os\"\n\nfunc main() { os.Stdout.WriteString(\"KEEP-INIT\\n\") }\n"), 0o644)
	return d
}

// buildTestInit builds the real init (cmd/enarx-keep-init) when it exists
// in this tree, else the stand-in, into out.
func buildTestInit(t *testing.T, out string) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join("..", "..", "cmd", "enarx-keep-init")); err == nil {
		if err := BuildInit(context.Background(), out); err != nil {
			t.Fatal(err)
		}
		return InitPackage
	}
	if err := BuildStatic(context.Background(), tinyInitModule(t), ".", out); err != nil {
		t.Fatal(err)
	}
	return "example.com/keepinit (cmd/enarx-keep-init does not exist yet)"
}

// TestReproduciblePipeline builds the init twice (the second time with an
// empty build cache) and the image twice from it, with the installed Debian kernel and its modules where present: the
// init binaries, then the initrds, must be identical; the init must be
// static and its manifest entry must record the pinned build settings.
func TestReproduciblePipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the init twice (about a minute)")
	}
	tmp := t.TempDir()
	a, b := filepath.Join(tmp, "init-a"), filepath.Join(tmp, "init-b")
	what := buildTestInit(t, a)
	// The second build starts from an empty build cache, so it really
	// compiles everything again instead of copying the first result.
	warmCache := os.Getenv("GOCACHE")
	t.Setenv("GOCACHE", filepath.Join(tmp, "gocache"))
	buildTestInit(t, b)
	t.Logf("init: %s", what)
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if len(ab) == 0 || !bytes.Equal(ab, bb) {
		// In a working tree that someone edits meanwhile the source may
		// have changed between the two builds: build the first way again
		// (from the warm cache, quickly) and compare with that.
		t.Setenv("GOCACHE", warmCache)
		buildTestInit(t, a)
		if ab, _ = os.ReadFile(a); !bytes.Equal(ab, bb) {
			t.Fatalf("two builds of the init differ (%d and %d bytes)", len(ab), len(bb))
		}
		t.Log("the first build differed from the second; a rebuild matches it (the source changed during the test)")
	}
	if err := CheckStaticELF(a); err != nil {
		t.Fatal(err)
	}

	spec := Spec{Kernel: fixtureKernel, Init: a, InitBuild: InitBuildCommand()}
	if k, err := DefaultKernel(); err == nil {
		ms, err := ResolveModules(k.ModulesDir, k.Release, DefaultModules)
		if err != nil {
			t.Fatal(err)
		}
		spec.Kernel, spec.Modules = k.Path, ms
	} else if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true needs the Debian 6.12 cloud kernel: %v", err)
	}
	i1, err := Build(filepath.Join(tmp, "img1"), spec)
	if err != nil {
		t.Fatal(err)
	}
	spec.Init = b
	i2, err := Build(filepath.Join(tmp, "img2"), spec)
	if err != nil {
		t.Fatal(err)
	}
	r1, _ := os.ReadFile(i1.InitrdPath)
	r2, _ := os.ReadFile(i2.InitrdPath)
	if !bytes.Equal(r1, r2) || i1.Manifest.InitrdSHA256 != i2.Manifest.InitrdSHA256 {
		t.Fatal("two builds of the initrd differ")
	}
	st, _ := os.Stat(i1.KernelPath)
	t.Logf("kernel %s (%s, %d bytes, sha256 %s)", i1.Manifest.KernelRelease, spec.Kernel, st.Size(), i1.Manifest.KernelSHA256)
	t.Logf("init %d bytes, initrd %d bytes, sha256 %s, modules %v", len(ab), len(r1), i1.Manifest.InitrdSHA256, i1.Manifest.Modules)

	info := i1.Manifest.Init
	if info.GoVersion != runtime.Version() {
		t.Errorf("manifest go_version %q, the toolchain is %s", info.GoVersion, runtime.Version())
	}
	// What the binary says about itself: Go's build information (which
	// leaves out -ldflags under -trimpath), no symbol table (-s) and no
	// build ID (-buildid=).
	settings := strings.Join(info.BuildSettings, "\n")
	for _, s := range []string{"-trimpath=true", "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOAMD64=v1"} {
		if !strings.Contains(settings, s) {
			t.Errorf("manifest build settings lack %q:\n%s", s, settings)
		}
	}
	if strings.Contains(settings, "vcs.") {
		t.Errorf("VCS information in the init:\n%s", settings)
	}
	if !reflect.DeepEqual(info.BuildCommand, InitBuildCommand()) {
		t.Errorf("manifest build command %q", info.BuildCommand)
	}
	ef, err := elf.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	if ef.Section(".symtab") != nil || ef.Section(".debug_info") != nil {
		t.Error("the init has a symbol table or DWARF; -ldflags=-s -w was not applied")
	}
	if id, err := exec.Command("go", "tool", "buildid", a).Output(); err != nil || strings.TrimSpace(string(id)) != "" {
		t.Errorf("go tool buildid = %q, %v; want an empty build ID", id, err)
	}
}
