package sandbox

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/backend"
)

// Hooks of the tests below, run inside a confined Keep (see probe).
func init() {
	// stderr-overwrite: what a Keep whose workload escaped wasm could do
	// to the log file enarx's stderr appends to: clear O_APPEND on its
	// own stderr and write over the log's start; then one line of its
	// own. It answers what its fd 2 is and how each call went.
	containmentHooks["stderr-overwrite"] = func(string) string {
		var st unix.Stat_t
		kind := "fstat:"
		if err := unix.Fstat(2, &st); err == nil {
			kind = map[uint32]string{unix.S_IFIFO: "pipe", unix.S_IFSOCK: "socket", unix.S_IFREG: "file", unix.S_IFCHR: "chr"}[st.Mode&unix.S_IFMT]
		} else {
			kind += errnoString(err)
		}
		_, err := unix.FcntlInt(2, unix.F_SETFL, 0)
		setfl := errnoString(err)
		_, err = unix.Pwrite(2, []byte("OVERWRITTEN"), 0)
		pwrite := errnoString(err)
		unix.Write(2, []byte("line of the Keep\n"))
		return fmt.Sprintf("fd2=%s setfl=%s pwrite=%s", kind, setfl, pwrite)
	}
	// stderr-lines:<n>[,die] writes n numbered lines to the Keep's
	// stderr, each with one write, then answers, or exits without
	// answering (die).
	containmentHooks["stderr-lines"] = func(arg string) string {
		ns, mode, _ := strings.Cut(arg, ",")
		n, _ := strconv.Atoi(ns)
		for i := range n {
			if _, err := unix.Write(2, []byte(keepLine(i))); err != nil {
				return "write:" + errnoString(err)
			}
		}
		if mode == "die" {
			unix.Exit(7)
		}
		return "ALLOWED"
	}
}

// keepLine is line i of the stderr-lines hook.
func keepLine(i int) string {
	return fmt.Sprintf("keep line %05d %s\n", i, strings.Repeat("x", 80))
}

// TestKeepStderrFileNotShared: enarx's stderr appends to a log file
// (`enarx run app.wasm 2>>enarx.log`, a systemd `append:` log). The
// Keep's own diagnostics must reach the log without the Keep holding the
// log's open file description: with it, a Keep whose workload escaped
// wasm could clear O_APPEND (fcntl F_SETFL is allowed) and pwrite over
// what others wrote there. It gets a pipe the host copies instead.
func TestKeepStderrFileNotShared(t *testing.T) {
	const earlier = "a line another process wrote earlier\n"
	name := filepath.Join(t.TempDir(), "enarx.log")
	if err := os.WriteFile(name, []byte(earlier), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	code, _, err := run(context.Background(), fake("probe", "stderr-overwrite"), hostOptions{stderr: f})
	out, ok := strings.CutPrefix(fmt.Sprint(err), probesPrefix)
	if code != 0 || !ok {
		t.Fatalf("probe: %d %v", code, err)
	}
	t.Logf("in the Keep: %s", out)
	if !strings.HasPrefix(out, "fd2=pipe ") {
		t.Errorf("the Keep's stderr is not a pipe: %s", out)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), earlier) {
		t.Errorf("the Keep wrote over the log's earlier content: %q", b)
	}
	if !strings.Contains(string(b), "\nline of the Keep\n") {
		t.Errorf("the Keep's line is not in the log: %q", b)
	}
	if hostFlags(t, int(f.Fd()))&unix.O_APPEND == 0 {
		t.Error("the host's log description lost O_APPEND")
	}
}

// TestKeepStderrCopiedWhole: everything the Keep writes to its stderr
// pipe is in the host's stderr when the run returns, in order and in
// whole lines — a Keep that answered and waits to be ended, one that
// exited without answering, and, with debug logging (the host waits for
// the Keep's exit), before the host's own last line about it — also
// through a socket (a journal stream) read slowly, where the copy lags.
func TestKeepStderrCopiedWhole(t *testing.T) {
	// More than a pipe holds: the Keep writes while the host copies.
	const n = 3000
	t.Run("answered", func(t *testing.T) {
		got := runToLogFile(t, fake("probe", "stderr-lines:"+strconv.Itoa(n)), 0)
		checkKeepLines(t, got, n, "")
	})
	t.Run("died", func(t *testing.T) {
		l := fake("probe", "stderr-lines:"+strconv.Itoa(n)+",die")
		got := runToLogFile(t, l, 1)
		checkKeepLines(t, got, n, "")
	})
	t.Run("debug", func(t *testing.T) {
		got := runToLogFile(t, fake("probe", "stderr-lines:"+strconv.Itoa(n)), 0, "debug")
		checkKeepLines(t, got, n, "sandbox Keep exited")
	})
	t.Run("slow socket", func(t *testing.T) {
		sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		host := os.NewFile(uintptr(sp[0]), "stderr-socket")
		defer host.Close()
		defer unix.Close(sp[1])
		// Small buffers: what the copy wrote is soon read.
		unix.SetsockoptInt(sp[0], unix.SOL_SOCKET, unix.SO_SNDBUF, 4096)
		unix.SetsockoptInt(sp[1], unix.SOL_SOCKET, unix.SO_RCVBUF, 4096)
		var mu sync.Mutex
		var got []byte
		read := func() bool { // one read, false once nothing is there
			b := make([]byte, 1024)
			m, _, err := unix.Recvfrom(sp[1], b, unix.MSG_DONTWAIT)
			if m > 0 {
				mu.Lock()
				got = append(got, b[:m]...)
				mu.Unlock()
			}
			return err == nil && m > 0
		}
		stop, stopped := make(chan struct{}), make(chan struct{})
		go func() { // a slow reader
			defer close(stopped)
			for {
				select {
				case <-stop:
					return
				default:
				}
				read()
				time.Sleep(time.Millisecond)
			}
		}()
		code, _, err := run(context.Background(), fake("probe", "stderr-lines:"+strconv.Itoa(n)), hostOptions{stderr: host})
		if code != 0 || !strings.Contains(fmt.Sprint(err), "ALLOWED") {
			t.Fatalf("run: %d %v", code, err)
		}
		// What the host had written when the run returned.
		close(stop)
		<-stopped
		for read() {
		}
		checkKeepLines(t, string(got), n, "")
	})
}

// runToLogFile runs l with the host's stderr (and, with level, its
// logger) appending to a regular file, and returns the file's content
// once the run has returned.
func runToLogFile(t *testing.T, l *backend.Launch, wantCode int, level ...string) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "enarx.log")
	f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if len(level) > 0 {
		var lv slog.Level
		if err := lv.UnmarshalText([]byte(level[0])); err != nil {
			t.Fatal(err)
		}
		l.Options.Logger = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: lv}))
	}
	code, _, err := run(context.Background(), l, hostOptions{stderr: f})
	if code != wantCode {
		t.Fatalf("run: %d %v; want status %d", code, err, wantCode)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkKeepLines checks that got holds the n lines of the stderr-lines
// hook, whole and in order, and, unless after is "", all of them before
// the line that contains after.
func checkKeepLines(t *testing.T, got string, n int, after string) {
	t.Helper()
	next, afterAt, lastKeep := 0, -1, -1
	for i, line := range strings.SplitAfter(got, "\n") {
		switch {
		case strings.HasPrefix(line, "keep line "):
			if line != keepLine(next) {
				t.Fatalf("line %d of the host's stderr is %q, want %q", i, line, keepLine(next))
			}
			next++
			lastKeep = i
		case strings.Contains(line, "keep line "):
			t.Fatalf("line %d of the host's stderr has a Keep line inside another: %q", i, line)
		case after != "" && afterAt < 0 && strings.Contains(line, after):
			afterAt = i
		}
	}
	if next != n {
		t.Fatalf("the host's stderr has %d of the Keep's %d lines when the run returns", next, n)
	}
	if after != "" && (afterAt < 0 || afterAt < lastKeep) {
		t.Errorf("the host's %q line (line %d) is not after the Keep's last line (%d)", after, afterAt, lastKeep)
	}
}

// BenchmarkKeepStderr: a Keep's start and end (fake runner, no cache)
// with the host's stderr a pipe (a description of its own), /dev/null
// (shared, as a regular file was before: the Keep is stopped at its end
// to put its flags back) and a regular file (the copied pipe).
func BenchmarkKeepStderr(b *testing.B) {
	r, w, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	go io.Copy(io.Discard, r)
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer null.Close()
	file, err := os.OpenFile(filepath.Join(b.TempDir(), "enarx.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer file.Close()
	for _, c := range []struct {
		name string
		f    *os.File
	}{{"pipe", w}, {"devnull", null}, {"file", file}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if code, _, err := run(context.Background(), fake(), hostOptions{stderr: c.f}); code != 0 || err != nil {
					b.Fatalf("run: %d %v", code, err)
				}
			}
		})
	}
}
