package sandbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/config"
	"github.com/enarx-go/enarx/internal/hostio"
	"github.com/enarx-go/enarx/keep"
)

// The directory probes act on a passed directory descriptor inside the
// confined Keep with the system calls keep/internal/vfs/hostfs makes (and
// with forms it never makes, which a Keep that escaped the wasm runtime
// could). Their argument is "fd/path[/path2]" with '|' between fd and the
// paths: "4|a.txt", "4|a|b".
func init() {
	dirArgs := func(arg string) (int, []string) {
		parts := strings.Split(arg, "|")
		fd, _ := strconv.Atoi(parts[0])
		return fd, parts[1:]
	}
	// open is openat2 with no resolve restriction: what a Keep that
	// escaped could ask (openat is refused by seccomp without a cache).
	open := func(fd int, path string, flags int, mode uint32) (int, error) {
		return unix.Openat2(fd, path, &unix.OpenHow{Flags: uint64(flags) | unix.O_CLOEXEC, Mode: uint64(mode)})
	}
	hooks := map[string]func(fd int, p []string) error{
		// read p[0] and answer its contents
		"dir-read": func(fd int, p []string) error {
			f, err := open(fd, p[0], unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(f)
			b := make([]byte, 64)
			n, err := unix.Pread(f, b, 0)
			if err != nil {
				return err
			}
			return errors.New("read=" + string(b[:n]))
		},
		"dir-open": func(fd int, p []string) error {
			f, err := open(fd, p[0], unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err == nil {
				unix.Close(f)
			}
			return err
		},
		// openat2 as hostfs calls it (RESOLVE_BENEATH) and, with "any",
		// without any resolve restriction: Landlock must hold alone.
		"dir-openat2": func(fd int, p []string) error {
			how := unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC}
			if len(p) < 2 || p[1] != "any" {
				how.Resolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS
			}
			f, err := unix.Openat2(fd, p[0], &how)
			if err == nil {
				unix.Close(f)
			}
			return err
		},
		"dir-write": func(fd int, p []string) error {
			f, err := open(fd, p[0], unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
			if err != nil {
				return err
			}
			defer unix.Close(f)
			if _, err := unix.Pwrite(f, []byte("written in the Keep"), 0); err != nil {
				return err
			}
			if err := unix.Fallocate(f, 0, 0, 4096); err != nil {
				return fmt.Errorf("fallocate: %w", err)
			}
			if err := unix.Ftruncate(f, 19); err != nil {
				return fmt.Errorf("ftruncate: %w", err)
			}
			if err := unix.Fsync(f); err != nil {
				return err
			}
			return unix.Fdatasync(f)
		},
		// open p[0] for writing without creating it (a write through an
		// existing name: a read-only directory must refuse it)
		"dir-open-write": func(fd int, p []string) error {
			f, err := open(fd, p[0], unix.O_WRONLY|unix.O_CLOEXEC, 0)
			if err == nil {
				unix.Close(f)
			}
			return err
		},
		"dir-mkdir":  func(fd int, p []string) error { return unix.Mkdirat(fd, p[0], 0o755) },
		"dir-rmdir":  func(fd int, p []string) error { return unix.Unlinkat(fd, p[0], unix.AT_REMOVEDIR) },
		"dir-unlink": func(fd int, p []string) error { return unix.Unlinkat(fd, p[0], 0) },
		"dir-rename": func(fd int, p []string) error { return unix.Renameat(fd, p[0], fd, p[1]) },
		// forms hostfs does not use, refused by seccomp
		"dir-openat": func(fd int, p []string) error {
			f, err := unix.Openat(fd, p[0], unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err == nil {
				unix.Close(f)
			}
			return err
		},
		"dir-renameat2": func(fd int, p []string) error { return unix.Renameat2(fd, p[0], fd, p[1], unix.RENAME_EXCHANGE) },
		"dir-link-follow": func(fd int, p []string) error {
			return unix.Linkat(fd, p[0], fd, p[1], unix.AT_SYMLINK_FOLLOW)
		},
		"dir-link":    func(fd int, p []string) error { return unix.Linkat(fd, p[0], fd, p[1], 0) },
		"dir-symlink": func(fd int, p []string) error { return unix.Symlinkat(p[0], fd, p[1]) },
		"dir-readlink": func(fd int, p []string) error {
			b := make([]byte, 256)
			n, err := unix.Readlinkat(fd, p[0], b)
			if err != nil {
				return err
			}
			return errors.New("link=" + string(b[:n]))
		},
		"dir-stat": func(fd int, p []string) error {
			var st unix.Stat_t
			return unix.Fstatat(fd, p[0], &st, unix.AT_SYMLINK_NOFOLLOW)
		},
		"dir-utimens": func(fd int, p []string) error {
			ts := []unix.Timespec{{Sec: 1e9}, {Sec: 1e9}}
			return unix.UtimesNanoAt(fd, p[0], ts, unix.AT_SYMLINK_NOFOLLOW)
		},
		"dir-list": func(fd int, p []string) error {
			f, err := open(fd, p[0], unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(f)
			b := make([]byte, 4096)
			n, err := unix.Getdents(f, b)
			if err != nil {
				return err
			}
			var names []string
			_, _, names = unix.ParseDirent(b[:n], -1, names)
			slices.Sort(names)
			return errors.New("names=" + strings.Join(names, ","))
		},
		// open p[0] p[1] times with openat2 and no resolve restriction
		// while the host swaps a directory on its path for a symlink out
		// (TestDirSymlinkSwap), and answer how many opens succeeded
		"dir-open-many": func(fd int, p []string) error {
			n, _ := strconv.Atoi(p[1])
			opened, leaked := 0, 0
			for range n {
				if f, err := open(fd, p[0], unix.O_RDONLY, 0); err == nil {
					opened++
					// The directory's own copy is empty.
					var st unix.Stat_t
					if unix.Fstat(f, &st) != nil || st.Size != 0 {
						leaked++
					}
					unix.Close(f)
				}
			}
			return fmt.Errorf("opened=%d leaked=%d", opened, leaked)
		},
		// forms hostfs never uses, refused by the seccomp argument filters
		"dir-link-empty-path": func(fd int, p []string) error {
			return unix.Linkat(controlFD, "", fd, p[0], unix.AT_EMPTY_PATH)
		},
		"dir-punch-hole": func(fd int, p []string) error {
			f, err := open(fd, p[0], unix.O_WRONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(f)
			return unix.Fallocate(f, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, 1)
		},
	}
	for name, h := range hooks {
		containmentHooks[name] = func(arg string) string {
			fd, p := dirArgs(arg)
			err := h(fd, p)
			var e unix.Errno
			if err != nil && !errors.As(err, &e) {
				return err.Error() // an answer: read=…, link=…, names=…
			}
			return errnoString(err)
		}
	}
}

// hostDir is a host directory for a dir entry, which the Keep's user
// (nobody when the tests run as root) may change: a file a.txt, a
// subdirectory sub, and symlinks out of it (absolute, relative, and to the
// directory's own host path). Beside it lies secret.txt, which the Keep must
// never reach.
func hostDir(t *testing.T) string { return hostDirIn(t, true) }

// hostDirIn is hostDir, with parents the Keep's user may search or not.
func hostDirIn(t *testing.T, searchable bool) string {
	t.Helper()
	base := t.TempDir()
	// The Keep finds the directory again by its path to mount it in its
	// empty root: its parents must be searchable by the Keep's user.
	mode := os.FileMode(0o755)
	if !searchable {
		mode = 0o700
	}
	os.Chmod(base, mode)
	os.Chmod(filepath.Dir(base), mode)
	if err := os.WriteFile(filepath.Join(base, "secret.txt"), []byte("host secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(base, "dir")
	for _, err := range []error{
		os.Mkdir(d, 0o755),
		os.WriteFile(filepath.Join(d, "a.txt"), []byte("hello from the host"), 0o644),
		os.Mkdir(filepath.Join(d, "sub"), 0o755),
		os.Symlink("/etc", filepath.Join(d, "etc")),
		os.Symlink("../secret.txt", filepath.Join(d, "up")),
		os.Symlink(filepath.Join(base, "secret.txt"), filepath.Join(d, "abs")),
		os.Symlink("/", filepath.Join(d, "sub", "root")),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	uid := keepHostID(os.Geteuid())
	filepath.Walk(d, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, uid, keepHostID(os.Getegid())) })
	return d
}

// dirLaunch is a fake launch whose [[files]] are the host directories
// dirs (opened as hostio opens them), read-only where ro says so, at fds
// 4, 5, … in the Keep.
func dirLaunch(t *testing.T, dirs []string, ro []bool, args ...string) *backend.Launch {
	t.Helper()
	l := fake(args...)
	l.Config = &config.Config{}
	for i, d := range dirs {
		f, err := os.OpenFile(d, os.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		l.Files = append(l.Files, f)
		l.Config.Files = append(l.Config.Files, config.File{Kind: config.KindDir, Name: fmt.Sprintf("d%d", i),
			Dir: &config.DirOptions{GuestPath: fmt.Sprintf("/d%d", i), Source: config.SourceHost, HostPath: d, ReadOnly: ro[i]}})
	}
	return l
}

// runDirProbes runs probes (name → argument) in a Keep with the host
// directories of l, without the layers in skip, and returns each outcome.
func runDirProbes(t *testing.T, l *backend.Launch, probes []string, skip ...string) ([]Layer, []string) {
	t.Helper()
	l.Options.Args = []string{"probe", strings.Join(probes, ";")}
	var stderr bytes.Buffer
	code, layers, err := run(context.Background(), l, hostOptions{stderr: &stderr, env: skipLayers(skip...)})
	out, ok := strings.CutPrefix(fmt.Sprint(err), probesPrefix)
	if code != 0 || !ok {
		t.Fatalf("probes: %d, %v (stderr %s)", code, err, stderr.String())
	}
	return layers, strings.Split(out, ";")
}

// TestDirs: a Keep uses a read-write and a read-only host directory with
// the system calls hostfs makes, and cannot reach anything outside them,
// by any path or through any symlink the host put there; the read-only one
// refuses every change though the Keep makes the system calls itself (as
// one that escaped the wasm runtime and its WASI layer would). It repeats
// with layers left out, to show Landlock and the directories' mounts each
// holding on their own.
func TestDirs(t *testing.T) {
	type check struct {
		probe string
		want  []string
	}
	// fd 4 is the read-write directory, fd 5 the read-only one.
	use := []check{
		{"dir-read:4|a.txt", []string{"read=hello from the host"}},
		{"dir-openat2:4|sub", []string{"ALLOWED"}},
		{"dir-write:4|new.txt", []string{"ALLOWED"}},
		{"dir-read:4|new.txt", []string{"read=written in the Keep"}},
		{"dir-mkdir:4|made", []string{"ALLOWED"}},
		{"dir-rename:4|new.txt|made/moved.txt", []string{"ALLOWED"}}, // into a subdirectory: REFER (ABI ≥ 2)
		{"dir-rename:4|made/moved.txt|made/m2.txt", []string{"ALLOWED"}},
		{"dir-link:4|made/m2.txt|made/hard.txt", []string{"ALLOWED"}},
		{"dir-symlink:4|m2.txt|made/sym", []string{"ALLOWED"}},
		{"dir-readlink:4|made/sym", []string{"link=m2.txt"}},
		{"dir-utimens:4|made/m2.txt", []string{"ALLOWED"}},
		{"dir-stat:4|made/hard.txt", []string{"ALLOWED"}},
		{"dir-list:4|made", []string{"names=hard.txt,m2.txt,sym"}},
		{"dir-unlink:4|made/hard.txt", []string{"ALLOWED"}},
		{"dir-read:5|a.txt", []string{"read=hello from the host"}},
		{"dir-list:5|.", []string{"names=a.txt,abs,etc,sub,up"}},
	}
	// Escapes, with all layers: ".." at a directory ends in the Keep's
	// empty root, and so does every symlink out.
	escapes := []check{
		{"dir-open:4|../secret.txt", []string{"ENOENT"}},
		{"dir-open:4|../../secret.txt", []string{"ENOENT"}},
		{"dir-open:4|up", []string{"ENOENT"}},
		{"dir-open:4|abs", []string{"ENOENT"}},
		{"dir-open:4|etc/passwd", []string{"ENOENT"}},
		{"dir-open:4|/etc/passwd", []string{"ENOENT"}},
		{"dir-openat2:4|../secret.txt|any", []string{"ENOENT"}},
		{"dir-openat2:4|../secret.txt", []string{"EXDEV"}},
		{"dir-openat2:4|sub/root/etc/passwd", []string{"EXDEV"}},
		{"dir-stat:4|../secret.txt", []string{"ENOENT"}},
		{"dir-stat:4|../../../../../etc/passwd", []string{"ENOENT"}},
		{"open-host-file", []string{"EPERM"}}, // openat stays refused
		{"dir-write:4|../x", []string{"EACCES", "EROFS"}},
		// What is in the empty root: the directories' own mounts, the
		// other one only as Landlock allows it.
		{"dir-write:4|../1/x", []string{"EACCES", "EROFS"}},
		// the read-only directory
		{"dir-write:5|x", []string{"EROFS"}},
		{"dir-open-write:5|a.txt", []string{"EROFS"}},
		{"dir-mkdir:5|m", []string{"EROFS"}},
		{"dir-unlink:5|a.txt", []string{"EROFS"}},
		{"dir-rename:5|a.txt|b.txt", []string{"EROFS"}},
		{"dir-symlink:5|a.txt|s", []string{"EROFS"}},
		{"dir-utimens:5|a.txt", []string{"EROFS"}},
		// seccomp's argument filters
		{"dir-link-empty-path:4|stolen", []string{"EPERM"}},
		{"dir-link-follow:4|a.txt|b.txt", []string{"EPERM"}},
		{"dir-openat:4|a.txt", []string{"EPERM"}},
		{"dir-renameat2:4|a.txt|sub", []string{"EPERM"}},
		{"dir-punch-hole:4|a.txt", []string{"EPERM"}},
	}
	variants := []struct {
		name   string
		skip   []string
		needs  string
		checks []check
	}{
		{name: "all layers", checks: append(slices.Clone(use), escapes...)},
		// Landlock alone: the directories keep the host's mount, so ".."
		// reaches the host's file system, where Landlock refuses every open
		// and every change (but not stat: see mountDir).
		{name: "landlock alone", skip: []string{LayerMountNS, LayerSeccomp}, needs: LayerLandlock, checks: append(slices.Clone(use),
			check{"dir-open:4|../secret.txt", []string{"EACCES"}},
			check{"dir-open:4|up", []string{"EACCES"}},
			check{"dir-open:4|abs", []string{"EACCES"}},
			check{"dir-open:4|etc/passwd", []string{"EACCES"}},
			check{"dir-openat2:4|sub/root/etc/passwd|any", []string{"EACCES"}},
			check{"open-host-file", []string{"EACCES"}},
			check{"dir-write:4|../x", []string{"EACCES"}},
			check{"dir-write:5|x", []string{"EACCES"}},
			check{"dir-open-write:5|a.txt", []string{"EACCES"}},
			check{"dir-mkdir:5|m", []string{"EACCES"}},
			check{"dir-unlink:5|a.txt", []string{"EACCES"}},
			check{"dir-rename:5|a.txt|b.txt", []string{"EACCES"}},
			check{"dir-symlink:5|a.txt|s", []string{"EACCES"}},
			check{"dir-stat:4|../secret.txt", []string{"ALLOWED"}}, // the hole the mounts close
		)},
		// The mounts alone: no path leads out, and the read-only directory
		// is a read-only mount.
		{name: "mounts without landlock and seccomp", skip: []string{LayerLandlock, LayerSeccomp}, needs: LayerMountNS, checks: []check{
			{"dir-read:4|a.txt", []string{"read=hello from the host"}},
			{"dir-open:4|../secret.txt", []string{"ENOENT"}},
			{"dir-open:4|up", []string{"ENOENT"}},
			{"dir-stat:4|../../../../../etc/passwd", []string{"ENOENT"}},
			{"dir-write:5|x", []string{"EROFS"}},
			{"dir-open-write:5|a.txt", []string{"EROFS"}},
			{"dir-unlink:5|a.txt", []string{"EROFS"}},
		}},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			rw, ro := hostDir(t), hostDir(t)
			l := dirLaunch(t, []string{rw, ro}, []bool{false, true})
			probes := make([]string, len(v.checks))
			for i, c := range v.checks {
				probes[i] = c.probe
			}
			layers, got := runDirProbes(t, l, probes, v.skip...)
			if v.needs != "" && !layerOn(layers, v.needs) {
				t.Fatalf("layer %q is not in force: %v", v.needs, layers)
			}
			for i, c := range v.checks {
				if !slices.Contains(c.want, got[i]) {
					t.Errorf("%s: got %s, want one of %v", c.probe, got[i], c.want)
				}
			}
			// What the Keep wrote is on the host; the read-only
			// directory and the secret beside both are unchanged.
			if v.name != "mounts without landlock and seccomp" {
				if b, err := os.ReadFile(filepath.Join(rw, "made", "m2.txt")); err != nil || string(b) != "written in the Keep" {
					t.Errorf("the Keep's file on the host: %q, %v", b, err)
				}
			}
			ents, _ := os.ReadDir(ro)
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			if want := []string{"a.txt", "abs", "etc", "sub", "up"}; !slices.Equal(names, want) {
				t.Errorf("read-only directory now holds %v, want %v", names, want)
			}
			if b, _ := os.ReadFile(filepath.Join(ro, "a.txt")); string(b) != "hello from the host" {
				t.Errorf("read-only a.txt now %q", b)
			}
		})
	}
}

// TestDirsRequireIsolation: a Keep with directories runs with
// --require-isolation when every layer is in force, and refuses without
// Landlock, which confines its opens.
func TestDirsRequireIsolation(t *testing.T) {
	if missing := hostLacksLayers(); missing != "" {
		t.Skipf("the kernel lacks %s", missing)
	}
	l := dirLaunch(t, []string{hostDir(t)}, []bool{false}, "exit", "0")
	l.Policy.RequireIsolation = true
	if code, _, err := run(context.Background(), l, hostOptions{}); code != 0 || err != nil {
		t.Fatalf("all layers: %d %v", code, err)
	}
	code, _, err := run(context.Background(), l, hostOptions{env: skipLayers(LayerLandlock)})
	if code != 1 || err == nil || !strings.Contains(err.Error(), "--require-isolation") {
		t.Fatalf("without Landlock: %d %v", code, err)
	}
}

// TestVolumeKeysReachKeep: keep.Options.VolumeKeys arrive in the Keep
// whole, and never on the Keep's command line (which /proc shows to other
// processes).
func TestVolumeKeysReachKeep(t *testing.T) {
	keys := map[string][]byte{"file:/k1": bytes.Repeat([]byte{1}, 32), "file:/k2": bytes.Repeat([]byte{0xfe}, 32)}
	for _, socket := range []bool{false, true} {
		l := fake("volumekeys")
		l.Options.VolumeKeys = keys
		_, _, err := run(context.Background(), l, hostOptions{socketPayload: socket})
		if want := "keys=" + keysDigest(keys) + " in-argv=false"; fmt.Sprint(err) != want {
			t.Fatalf("socket payload %v: got %v, want %s", socket, err, want)
		}
	}
	// A key of the wrong size never reaches a workload.
	l := fake("volumekeys")
	l.Options.VolumeKeys = map[string][]byte{"file:/short": {1, 2, 3}}
	if code, _, err := run(context.Background(), l, hostOptions{}); code != 1 || err == nil || !strings.Contains(err.Error(), "is 3 bytes; want 32") {
		t.Fatalf("short key: %d %v", code, err)
	}
}

// keysDigest names a set of volume keys without showing them.
func keysDigest(keys map[string][]byte) string {
	var specs []string
	for s := range keys {
		specs = append(specs, s)
	}
	slices.Sort(specs)
	h := sha256.New()
	for _, s := range specs {
		fmt.Fprintf(h, "%s=%x;", s, keys[s])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// volumeKeysReport is the fake runner's "volumekeys" command.
func volumeKeysReport(o keep.Options) error {
	inArgv := false
	for _, k := range o.VolumeKeys {
		for _, a := range os.Args {
			if strings.Contains(a, base64.StdEncoding.EncodeToString(k)) || strings.Contains(a, hex.EncodeToString(k)) {
				inArgv = true
			}
		}
	}
	return fmt.Errorf("keys=%s in-argv=%v", keysDigest(o.VolumeKeys), inArgv)
}

// TestDirWorkload runs a Go workload doing real file I/O (fsbench: large
// sequential writes with fsync and reads, many small files created,
// stat'ed and read) in a host directory through keep.Run's WASI layer and
// hostfs, on nil and in the sandbox, each on a fresh directory: both must
// succeed and leave the same files. A read-only directory refuses the
// write on both alike, on the build's default engine.
func TestDirWorkload(t *testing.T) {
	if testing.Short() {
		t.Skip("a Go-built module to compile")
	}
	wasm := build(t, "fsbench")
	cfg := func(dir string, ro bool) string {
		return fmt.Sprintf("[[files]]\nkind = \"stdin\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \"stderr\"\n"+
			"[[files]]\nkind = \"dir\"\nname = \"data\"\nguest_path = \"/data\"\nsource = \"host\"\nhost_path = %q\nreadonly = %v\n", dir, ro)
	}
	for _, b := range []backend.Backend{backend.Nil{}, Backend{}} {
		t.Run(b.Name(), func(t *testing.T) {
			dir := hostDir(t)
			r := runOn(t, b, wasm, cfg(dir, false), nil, "/data", "write:2", "read", "small:50")
			if r.code != 0 || r.err != "" {
				t.Fatalf("read-write: %d %q, stderr %s", r.code, r.err, r.stderr)
			}
			for _, op := range []string{"write", "read", "small"} {
				if !strings.Contains(r.stdout, op+" ns=") {
					t.Errorf("no %s figure in %q", op, r.stdout)
				}
			}
			if st, err := os.Stat(filepath.Join(dir, "big")); err != nil || st.Size() != 2<<20 {
				t.Errorf("big on the host: %v, %v", st, err)
			}
			if ents, err := os.ReadDir(filepath.Join(dir, "small")); err != nil || len(ents) != 50 {
				t.Errorf("small on the host: %d files, %v", len(ents), err)
			}
			r = runOn(t, b, wasm, cfg(hostDir(t), true), nil, "/data", "write:1")
			if r.code != 1 || !strings.Contains(r.stderr, "open /data/big: Read-only file system") {
				t.Errorf("read-only: %d %q, stderr %q", r.code, r.err, r.stderr)
			}
			// A sealed volume keeps its ciphertext through hostfs in the
			// same directory: the same system calls, nothing more.
			sealedDir, key := sealedHostDir(t)
			sealedCfg := strings.Replace(cfg(sealedDir, false), `source = "host"`, `source = "sealed"`+"\nkey = \"file:"+key+"\"", 1)
			r = runOn(t, b, wasm, sealedCfg, nil, "/data", "write:2", "read", "small:20")
			if r.code != 0 || r.err != "" {
				t.Fatalf("sealed: %d %q, stderr %s", r.code, r.err, r.stderr)
			}
			if _, err := os.Stat(filepath.Join(sealedDir, "big")); err == nil {
				t.Errorf("the sealed directory holds the plaintext name big")
			}
			// A memory directory needs nothing from the host (no fd, no
			// Landlock rule, no system call beyond the base list).
			memCfg := strings.Replace(cfg("", false), "source = \"host\"\nhost_path = \"\"", "source = \"memory\"\nsize = \"8MiB\"", 1)
			r = runOn(t, b, wasm, memCfg, nil, "/data", "write:2", "read", "small:20")
			if r.code != 0 || r.err != "" {
				t.Fatalf("memory: %d %q, stderr %s", r.code, r.err, r.stderr)
			}
		})
	}
}

// TestDirUnreachablePath: a directory whose path the Keep's user cannot
// search (with the tests as root, the Keep is nobody and the parent is
// 0700) is not mounted in the empty root; the Keep still uses it, the
// empty-root layer says so, and Landlock still refuses opens and changes
// out of it (stat out of it fails here only because the parent is 0700).
func TestDirUnreachablePath(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs the Keep's user to differ from the directory's owner (tests as root)")
	}
	l := dirLaunch(t, []string{hostDirIn(t, false)}, []bool{false})
	layers, got := runDirProbes(t, l, []string{"dir-read:4|a.txt", "dir-write:4|new.txt", "dir-open:4|../secret.txt", "dir-write:4|../x", "dir-stat:4|../secret.txt"})
	if want := []string{"read=hello from the host", "ALLOWED", "EACCES", "EACCES", "EACCES"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, ly := range layers {
		if ly.Name == LayerMountNS && (!ly.Enabled || !strings.Contains(ly.Detail, "files[0] not mounted in it")) {
			t.Errorf("empty root layer: %+v", ly)
		}
	}
}

// TestDirSymlinkSwap: while the Keep opens sub/etc/passwd beneath its
// directory over and over (openat2 without RESOLVE_BENEATH, as a Keep that
// escaped its runtime could), the host swaps sub between a directory
// holding etc/passwd and a symlink to "/". The Keep may open the file in
// its own directory, never the host's /etc/passwd: with every layer, "/"
// is the Keep's empty root; with Landlock alone, the host's root, where
// Landlock refuses. The directory's own copy is told apart by its size.
func TestDirSymlinkSwap(t *testing.T) {
	for _, v := range []struct {
		name string
		skip []string
	}{{"all layers", nil}, {"landlock alone", []string{LayerMountNS, LayerSeccomp}}} {
		t.Run(v.name, func(t *testing.T) {
			d := hostDir(t)
			sub := filepath.Join(d, "sub")
			if err := os.RemoveAll(sub); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			swapped := make(chan int)
			go func() {
				n := 0
				defer func() { swapped <- n }()
				for {
					select {
					case <-stop:
						return
					default:
					}
					os.RemoveAll(sub)
					os.Symlink("/", sub)
					os.Remove(sub)
					os.MkdirAll(filepath.Join(sub, "etc"), 0o755)
					os.WriteFile(filepath.Join(sub, "etc", "passwd"), nil, 0o644)
					n++
				}
			}()
			l := dirLaunch(t, []string{d}, []bool{false})
			_, got := runDirProbes(t, l, []string{"dir-open-many:4|sub/etc/passwd|20000"}, v.skip...)
			close(stop)
			n := <-swapped
			t.Logf("host swapped %d times; Keep: %v", n, got)
			var opened, leaked int
			if _, err := fmt.Sscanf(got[0], "opened=%d leaked=%d", &opened, &leaked); err != nil || n == 0 {
				t.Fatalf("no race: %d swaps, %v", n, got)
			}
			if leaked != 0 {
				t.Errorf("%d of %d opens reached a file other than the directory's own", leaked, opened)
			}
		})
	}
}

// TestDirRights pins the Landlock rights beneath a passed directory for
// each ABI (only this kernel's is exercised by the other tests): never
// execute, devices, sockets or FIFOs; REFER from ABI 2, TRUNCATE from ABI
// 3, and neither for a read-only directory.
func TestDirRights(t *testing.T) {
	const (
		ro     = unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_READ_DIR
		rwABI1 = ro | unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_REMOVE_DIR | unix.LANDLOCK_ACCESS_FS_REMOVE_FILE |
			unix.LANDLOCK_ACCESS_FS_MAKE_DIR | unix.LANDLOCK_ACCESS_FS_MAKE_REG | unix.LANDLOCK_ACCESS_FS_MAKE_SYM
		never = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_MAKE_CHAR | unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK |
			unix.LANDLOCK_ACCESS_FS_MAKE_FIFO | unix.LANDLOCK_ACCESS_FS_MAKE_SOCK | unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
	)
	for abi := 1; abi <= 7; abi++ {
		want := uint64(rwABI1)
		if abi >= 2 {
			want |= unix.LANDLOCK_ACCESS_FS_REFER
		}
		if abi >= 3 {
			want |= unix.LANDLOCK_ACCESS_FS_TRUNCATE
		}
		if got := dirRights(abi, false); got != want || got&never != 0 {
			t.Errorf("ABI %d read-write: %#x, want %#x", abi, got, want)
		}
		if got := dirRights(abi, true); got != ro {
			t.Errorf("ABI %d read-only: %#x, want %#x", abi, got, ro)
		}
	}
	if abi, err := landlockABI(); err == nil {
		t.Logf("this kernel's Landlock ABI: %d", abi)
	}
}

// TestSealedVolumeFreeWhenRunReturns: a run that passed a sealed volume
// returns only once the Keep's process, and with it its copy of the
// volume's locked descriptor, is gone, so that the next run finds the
// volume free. The host returned on
// the Keep's result and killed it, and the process was torn down after:
// `enarx run` twice in a row (docs/storage.md's example, on a loaded
// machine) failed with "in use by another Keep (lock held)". Stdio here
// are files, which nothing drains: the return alone must be enough.
func TestSealedVolumeFreeWhenRunReturns(t *testing.T) {
	if testing.Short() {
		t.Skip("a Go-built module to compile")
	}
	wasm := build(t, "hello")
	dir, key := sealedHostDir(t)
	toml := []byte(fmt.Sprintf("[[files]]\nkind = \"stdin\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \"stderr\"\n"+
		"[[files]]\nkind = \"dir\"\nname = \"data\"\nguest_path = \"/data\"\nsource = \"sealed\"\nhost_path = %q\nkey = \"file:%s\"\n", dir, key))
	cfg, err := config.Parse("Enarx.toml", toml)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		ctx := context.Background()
		keys, err := hostio.VolumeKeys(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		files, err := hostio.Open(ctx, cfg)
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		out, err := os.Create(filepath.Join(t.TempDir(), "out"))
		if err != nil {
			t.Fatal(err)
		}
		null, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		files[0], files[1], files[2] = null, out, out
		before := children(t) // a Keep of an earlier test may still be reaped
		code, err := Backend{}.Run(ctx, &backend.Launch{Workload: keep.Workload{Wasm: wasm, Config: toml, ConfigName: "Enarx.toml"}, Config: cfg, Files: files,
			Options: keep.Options{VolumeKeys: keys, CacheDir: testCacheDir}})
		var kids []string
		for _, k := range children(t) {
			if !slices.Contains(before, k) {
				kids = append(kids, k)
			}
		}
		hostio.Close(files)
		null.Close()
		out.Close()
		if code != 0 || err != nil {
			t.Fatalf("run %d: %d %v", i, code, err)
		}
		if len(kids) > 0 {
			t.Fatalf("run %d: the Keep (pid %v) was still there when the run returned", i, kids)
		}
		d, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		err = unix.Flock(int(d.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		d.Close()
		if err != nil {
			t.Fatalf("run %d: the sealed volume is still locked after the run returned: %v", i, err)
		}
	}
}

// children lists the pids of this process's children (reaped ones are
// not listed; zombies are).
func children(t *testing.T) []string {
	t.Helper()
	tasks, err := filepath.Glob("/proc/self/task/*/children")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // a thread that ended meanwhile
		}
		pids = append(pids, strings.Fields(string(b))...)
	}
	return pids
}

// sealedHostDir makes an empty host directory for a sealed volume, which
// the Keep's user may write, and a key file for it.
func sealedHostDir(t *testing.T) (dir, key string) {
	t.Helper()
	dir = filepath.Join(hostDir(t), "sealed")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(dir, keepHostID(os.Geteuid()), keepHostID(os.Getegid()))
	key = filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(key, bytes.Repeat([]byte{0x42}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, key
}
