package doctest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/enarx-go/enarx/internal/testutil"
)

// fileTimeout bounds the blocks of one Markdown file.
const fileTimeout = 2 * time.Minute

func TestBlocks(t *testing.T) {
	md := "# T\n\n```sh\nnot marked\n```\n\n" + Marker + "\n```sh\na\nb\n```\ntext\n" + Marker + "\n```sh\nc\n```\n"
	bl, err := Blocks([]byte(md))
	if err != nil {
		t.Fatal(err)
	}
	if len(bl) != 2 || bl[0].Line != 8 || bl[0].Text != "a\nb\n" || bl[1].Line != 14 || bl[1].Text != "c\n" {
		t.Fatalf("blocks %+v", bl)
	}
	for _, bad := range []string{
		Marker + "\n```toml\nx\n```\n",
		Marker + "\n\n```sh\nx\n```\n",
		Marker + "\n```sh\nx\n",
		"x\n" + Marker + "\n",
		Marker + "\n" + Marker + "\n```sh\nx\n```\n",
	} {
		if _, err := Blocks([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// repoRoot is the repository this test belongs to.
func repoRoot(t *testing.T) string {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod at %s", root)
	}
	return root
}

// docs are the Markdown files with runnable blocks, README first.
func docs(t *testing.T, root string) []string {
	files := []string{"README.md"}
	more, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range more {
		files = append(files, filepath.Join("docs", filepath.Base(m)))
	}
	return files
}

// freshCopy copies the working tree's files that git does not ignore into
// dir: what a fresh clone would hold once they are committed, without
// bin/, registry/ or other ignored local state.
func freshCopy(t *testing.T, root, dir string) {
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		testutil.NeedHost(t, "git ls-files in %s: %v", root, err)
	}
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, rel)
		st, err := os.Lstat(src)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the working tree
		} else if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, dst); err != nil {
				t.Fatal(err)
			}
			continue
		}
		copyFile(t, src, dst, st.Mode().Perm())
	}
}

func copyFile(t *testing.T, src, dst string, mode fs.FileMode) {
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// copyTree copies the regular files under src into dst.
func copyTree(t *testing.T, src, dst string) {
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		copyFile(t, p, filepath.Join(dst, rel), info.Mode().Perm())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// env is the environment the blocks run in: bin/ and Go first on PATH,
// caches and credentials in the test's directories, no ENARX_* settings
// from the developer's shell.
func env(t *testing.T, dir string) []string {
	var e []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "ENARX_") || k == "PATH" || strings.HasPrefix(k, "XDG_") || k == "HOME" {
			continue
		}
		e = append(e, kv)
	}
	home := t.TempDir()
	return append(e,
		"PATH="+filepath.Join(dir, "bin")+":"+filepath.Join(runtime.GOROOT(), "bin")+":"+os.Getenv("PATH"),
		"HOME="+home, "XDG_CACHE_HOME="+filepath.Join(home, ".cache"), "XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		// Go's own caches stay the developer's, so builds are incremental.
		"GOCACHE="+goEnv(t, "GOCACHE"), "GOMODCACHE="+goEnv(t, "GOMODCACHE"), "GOPATH="+goEnv(t, "GOPATH"))
}

func goEnv(t *testing.T, name string) string {
	out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "env", name).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

// run runs script with bash in dir, in its own process group, which is
// killed when the script ends (its background commands with it). Output
// goes to a file, not a pipe, so that background commands holding it
// cannot keep the script from being seen to end.
func run(t *testing.T, dir string, env []string, script string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), fileTimeout)
	defer cancel()
	logf, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdin = nil // /dev/null
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	runErr := cmd.Run()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		time.Sleep(200 * time.Millisecond) // let servers release their ports
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if ctx.Err() != nil {
		runErr = errors.New("timed out after " + fileTimeout.String())
	}
	out, _ := os.ReadFile(logf.Name())
	return string(out), runErr
}

// TestDocs runs every marked block of README.md and docs/*.md, each file on
// its own fresh copy of the repository with the binaries built.
func TestDocs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs make and the documented commands")
	}
	for _, tool := range []string{"bash", "make", "git", "openssl", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.NeedHost(t, "the documented commands need %s", tool)
		}
	}
	root := repoRoot(t)
	// README.md runs first on a copy without bin/ (its first block is
	// `make demo`); the bin/ it leaves (or `make build examples`, if it
	// left none) is copied into the fresh copy of every other file.
	var bin string
	keep := t.TempDir() // outlives the subtests
	for _, name := range docs(t, root) {
		md, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		blocks, err := Blocks(md)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(blocks) == 0 {
			continue
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			freshCopy(t, root, dir)
			if bin == "" {
				if name != "README.md" {
					build(t, dir)
				}
			} else {
				copyTree(t, bin, filepath.Join(dir, "bin"))
			}
			out, err := run(t, dir, env(t, dir), Script(name, blocks))
			if bin == "" {
				if _, serr := os.Stat(filepath.Join(dir, "bin", "enarx")); serr != nil {
					build(t, dir)
				}
				bin = filepath.Join(keep, "bin")
				copyTree(t, filepath.Join(dir, "bin"), bin)
			}
			if err != nil {
				t.Fatalf("%s: %v; the last block started is the last \"doctest:\" line:\n%s", name, err, tail(out, 6000))
			}
			t.Logf("%d blocks ran:\n%s", len(blocks), tail(out, 2000))
		})
	}
}

// build runs `make build examples` in dir.
func build(t *testing.T, dir string) {
	cmd := exec.Command("make", "build", "examples")
	cmd.Dir = dir
	cmd.Env = env(t, dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make build examples: %v\n%s", err, out)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := bytes.IndexByte([]byte(s[len(s)-n:]), '\n')
	return "…" + s[len(s)-n+i+1:]
}
