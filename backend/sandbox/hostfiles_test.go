package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/keep"
)

// Hooks of the tests below, run inside a confined Keep (see probe).
func init() {
	// nonblock-notify:<fd>,…,<fd>,<notify fd> sets O_NONBLOCK on each
	// listed descriptor and writes one byte on the first of them that is
	// a regular file, as a workload that escaped wasm could; then it
	// writes what it did as one line on the notify descriptor and waits
	// for the host to stop the Keep.
	containmentHooks["nonblock-notify"] = func(arg string) string {
		fds := strings.Split(arg, ",")
		notify, _ := strconv.Atoi(fds[len(fds)-1])
		var out []string
		wrote := false
		for _, s := range fds[:len(fds)-1] {
			fd, _ := strconv.Atoi(s)
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil {
				out = append(out, s+"=fstat:"+errnoString(err))
				continue
			}
			kind := map[uint32]string{unix.S_IFIFO: "pipe", unix.S_IFSOCK: "socket", unix.S_IFREG: "file", unix.S_IFCHR: "chr"}[st.Mode&unix.S_IFMT]
			if kind == "file" && !wrote {
				if _, err := unix.Write(fd, []byte("x")); err != nil {
					kind += ":write:" + errnoString(err)
				}
				wrote = true
			}
			fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
			if err == nil {
				_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl|unix.O_NONBLOCK)
			}
			if err == nil {
				fl, err = unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
			}
			switch {
			case err != nil:
				out = append(out, s+"="+kind+":"+errnoString(err))
			case fl&unix.O_NONBLOCK == 0:
				out = append(out, s+"="+kind+":still-blocking")
			default:
				out = append(out, s+"="+kind+":nonblocking")
			}
		}
		unix.Write(notify, []byte(strings.Join(out, ",")+"\n"))
		time.Sleep(time.Hour)
		return "woke"
	}
	// cache-grow:<n> starts n threads that each append 64 KiB at a time
	// to a file of the wazero cache's name beneath the Keep's cache, and
	// returns while they write.
	containmentHooks["cache-grow"] = func(arg string) string {
		n, _ := strconv.Atoi(arg)
		dir := filepath.Join(keepCacheDir, "wazero-v1.12.0-"+runtime.GOARCH+"-"+runtime.GOOS)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "mkdir:" + errnoString(err)
		}
		started := make(chan struct{})
		for i := range n {
			f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%064x", i)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
			if err != nil {
				return "open:" + errnoString(err)
			}
			go func() {
				runtime.LockOSThread()
				buf := make([]byte, 64<<10)
				started <- struct{}{}
				for {
					if _, err := f.Write(buf); err != nil {
						time.Sleep(time.Millisecond)
					}
				}
			}()
			<-started
		}
		return "ALLOWED"
	}
	// sigcont has a thread send the Keep SIGCONT over and over, which
	// cancels a stop before it completes.
	containmentHooks["sigcont"] = func(string) string {
		go func() {
			runtime.LockOSThread()
			pid, tid := unix.Getpid(), unix.Gettid()
			for {
				unix.Tgkill(pid, tid, unix.SIGCONT)
			}
		}()
		return "ALLOWED"
	}
	// cache-write:<path>,<bytes>[,spin] writes a file of that size at
	// path beneath the Keep's compilation cache (creating its
	// directories), then returns, or spins until the host kills it.
	containmentHooks["cache-write"] = func(arg string) string {
		parts := strings.Split(arg, ",")
		size, _ := strconv.Atoi(parts[1])
		p := filepath.Join(keepCacheDir, parts[0])
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return "mkdir:" + errnoString(err)
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return "open:" + errnoString(err)
		}
		buf := make([]byte, 64<<10)
		for n := 0; n < size; n += len(buf) {
			if _, err := f.Write(buf[:min(len(buf), size-n)]); err != nil {
				return "write:" + errnoString(err)
			}
		}
		if err := f.Close(); err != nil {
			return "close:" + errnoString(err)
		}
		if len(parts) > 2 && parts[2] == "spin" {
			for {
			}
		}
		return "ALLOWED"
	}
}

// pipe is a pipe whose host descriptions are blocking, as os.NewFile
// leaves them (os.Pipe's are non-blocking until Fd is called).
func pipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	r, w = os.NewFile(uintptr(p[0]), "r"), os.NewFile(uintptr(p[1]), "w")
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// hostFlags is F_GETFL of the host's description behind fd.
func hostFlags(t *testing.T, fd int) int {
	t.Helper()
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fl
}

// openPTY is a pseudo-terminal's master and slave, or nil where /dev/ptmx
// cannot make one.
func openPTY(t *testing.T) (master, slave *os.File) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil
	}
	rc, _ := m.SyscallConn()
	var n int
	rc.Control(func(fd uintptr) {
		if err = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); err == nil {
			n, err = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
		}
	})
	if err != nil {
		m.Close()
		return nil, nil
	}
	sfd, err := unix.Open("/dev/pts/"+strconv.Itoa(n), unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		m.Close()
		return nil, nil
	}
	s := os.NewFile(uintptr(sfd), "pts")
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

// TestKeepOwnsItsStdioFlags: a Keep that sets O_NONBLOCK on what it got
// for the host's stdio (which a Keep whose workload escaped wasm may do:
// fcntl F_SETFL is allowed) must not change the host's open file
// descriptions of pipes and ttys — the user's terminal would stay
// non-blocking after enarx exits, and enarx's own writes would fail with
// EAGAIN. Pipes and a tty get their own description in the Keep; a
// socket (which cannot be opened again) and a regular file (whose offset
// must be shared) share the host's, and their flags are put back once the
// Keep has ended. The pipes are [[files]] entries (stdin, stdout, stderr)
// and the Keep process's own stderr.
func TestKeepOwnsItsStdioFlags(t *testing.T) {
	inR, _ := pipe(t)
	_, outW := pipe(t)
	_, errW := pipe(t)
	keepErrR, keepErrW := pipe(t)
	notifyR, notifyW := pipe(t)
	go io.Copy(io.Discard, keepErrR)
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	sock, peer := os.NewFile(uintptr(sp[0]), "sock"), os.NewFile(uintptr(sp[1]), "peer")
	defer sock.Close()
	defer peer.Close()
	reg, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	// The host's descriptors, and the Keep's: the socket at 3, then the
	// files from 4 on, and the Keep process's stderr at 2.
	type passed struct {
		name   string
		f      *os.File
		keepFD int
		shared bool
	}
	ps := []passed{{name: "stdin pipe", f: inR}, {name: "stdout pipe", f: outW}, {name: "stderr pipe", f: errW},
		{name: "socket", f: sock, shared: true}, {name: "regular file", f: reg, shared: true}}
	if _, pts := openPTY(t); pts != nil {
		ps = append(ps, passed{name: "tty", f: pts})
	} else {
		t.Log("no pseudo-terminal here: ttys not checked")
	}
	l := fake()
	var fds []string
	for i := range ps {
		ps[i].keepFD = controlFD + 1 + i
		l.Files = append(l.Files, ps[i].f)
		fds = append(fds, strconv.Itoa(ps[i].keepFD))
	}
	ps = append(ps, passed{name: "Keep process stderr pipe", f: keepErrW, keepFD: 2})
	l.Files = append(l.Files, notifyW)
	l.Options.Args = []string{"probe", "nonblock-notify:2," + strings.Join(fds, ",") + "," + strconv.Itoa(controlFD+len(l.Files))}
	hostFD := map[string]int{}
	for _, p := range ps {
		hostFD[p.name] = int(p.f.Fd()) // blocking now: os.NewFile's are
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, _, err := run(ctx, l, hostOptions{stderr: keepErrW})
		done <- err
	}()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(notifyR).ReadString('\n')
		line <- s
	}()
	var report string
	select {
	case report = <-line:
	case err := <-done:
		t.Fatalf("the Keep ended before its hook ran: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("no word from the Keep's hook in a minute")
	}
	t.Logf("in the Keep: %s", strings.TrimSpace(report))
	if strings.Count(report, ":nonblocking") != len(ps) {
		t.Fatalf("the hook did not make every descriptor non-blocking in the Keep: %s", report)
	}
	// While the Keep runs: its change reached only what it shares.
	for _, p := range ps {
		nb := hostFlags(t, hostFD[p.name])&unix.O_NONBLOCK != 0
		if nb != p.shared {
			t.Errorf("while the Keep runs, the host's %s description is non-blocking: %v, want %v (shared: %v)", p.name, nb, p.shared, p.shared)
		}
	}
	if off, err := unix.Seek(hostFD["regular file"], 0, io.SeekCurrent); err != nil || off != 1 {
		t.Errorf("the regular file's offset on the host is %d (%v) after the Keep wrote a byte: want 1, shared", off, err)
	}
	cancel()
	<-done
	// After the run: the shared descriptions' flags are back.
	for _, p := range ps {
		if hostFlags(t, hostFD[p.name])&unix.O_NONBLOCK != 0 {
			t.Errorf("after the run, the host's %s description is non-blocking", p.name)
		}
	}
}

// TestReopenFD: what gets a description of its own, and what is shared.
func TestReopenFD(t *testing.T) {
	r, w := pipe(t)
	for _, f := range []*os.File{r, w} {
		nf, err := ownDescription(f)
		if err != nil || nf == nil {
			t.Fatalf("pipe: %v %v", nf, err)
		}
		fl := hostFlags(t, int(nf.Fd()))
		if fl&unix.O_ACCMODE != hostFlags(t, int(f.Fd()))&unix.O_ACCMODE || fl&unix.O_NONBLOCK != 0 {
			t.Errorf("pipe end reopened with flags %#x", fl)
		}
		if fd, _ := unix.FcntlInt(nf.Fd(), unix.F_GETFD, 0); fd&unix.FD_CLOEXEC == 0 {
			t.Error("reopened without close-on-exec")
		}
		nf.Close()
	}
	// A FIFO whose other end nobody holds: opening it must not wait.
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	rfd, err := unix.Open(fifo, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	rf := os.NewFile(uintptr(rfd), "fifo")
	defer rf.Close()
	if nf, err := ownDescription(rf); err != nil || nf == nil {
		t.Errorf("FIFO read end: %v %v", nf, err)
	} else {
		nf.Close()
	}
	reg, err := os.CreateTemp(t.TempDir(), "f")
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	for _, f := range []*os.File{reg, null} {
		if nf, err := ownDescription(f); nf != nil || err != nil {
			t.Errorf("%s reopened: %v %v", f.Name(), nf, err)
		}
	}
	if m, s := openPTY(t); m != nil {
		if nf, err := ownDescription(m); nf != nil || err != nil {
			t.Errorf("pty master reopened (a new terminal): %v %v", nf, err)
		}
		if nf, err := ownDescription(s); err != nil || nf == nil {
			t.Errorf("pty slave: %v %v", nf, err)
		} else {
			nf.Close()
		}
	}
}

// BenchmarkOwnDescription: what opening the host's three stdio pipes again
// costs a start.
func BenchmarkOwnDescription(b *testing.B) {
	var files []*os.File
	for range 3 {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			b.Fatal(err)
		}
		r, w := os.NewFile(uintptr(p[0]), "r"), os.NewFile(uintptr(p[1]), "w")
		defer r.Close()
		defer w.Close()
		files = append(files, w)
	}
	for b.Loop() {
		for _, f := range files {
			nf, err := ownDescription(f)
			if err != nil || nf == nil {
				b.Fatal(err)
			}
			nf.Close()
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestCacheCheckedAfterKeep: once a Keep has ended — normally, with the
// host waiting for its exit or returning on its result, or killed on
// --timeout — the host removes its module's compilation cache directory
// if the Keep left anything there the engines do not write, or more than
// the module's budget, and warns naming the Keep; what the engines write
// stays.
func TestCacheCheckedAfterKeep(t *testing.T) {
	if missing := hostLacksLayers(); missing != "" {
		testutil.NeedHost(t, "the kernel lacks %s", missing)
	}
	const entry = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	wasmtimeDir := "wasmtime-v44.0.0-0123abcd/"
	cases := []struct {
		name    string
		hook    string
		early   bool // the host returns on the result message
		timeout bool
		removed bool
	}{
		{name: "foreign file, host waits for the exit", hook: "cache-write:junk,4096", removed: true},
		{name: "foreign file, host returns on the result", hook: "cache-write:junk,4096", early: true, removed: true},
		{name: "foreign file, Keep killed on timeout", hook: "cache-write:junk,4096,spin", timeout: true, removed: true},
		{name: "file in a foreign directory", hook: "cache-write:" + wasmtimeDir + "sub/" + entry + ".cwasm,10", early: true, removed: true},
		{name: "engine entry beyond the budget", hook: "cache-write:" + wasmtimeDir + entry + ".cwasm,2097152", early: true, removed: true},
		{name: "engine entries within the budget", hook: "cache-write:" + wasmtimeDir + entry + ".cwasm,65536;cache-write:" + wasmtimeDir + entry + ".sum,45;" +
			"cache-write:wazero-v1.12.0-amd64-linux/" + entry + ",65536;cache-write:enarx-wazero-0123abcd/tmp-123,10", early: true},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wasm := fmt.Appendf(bytes.Clone(fakeWasm), "-%d", i)
			dir := filepath.Join(testCacheDir, "sandbox", digest(wasm))
			os.RemoveAll(dir)
			var logs syncBuffer
			l := &backend.Launch{Workload: keep.Workload{Wasm: wasm}, Options: keep.Options{
				Args: []string{"probe", c.hook}, CacheDir: testCacheDir,
				Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
			}}
			if c.timeout {
				l.Policy.Timeout = time.Second
			}
			h := hostOptions{}
			var stderr bytes.Buffer
			if !c.early {
				h.stderr = &stderr // not a file: the host waits for the Keep's exit
			}
			var pid int
			startedHook = func(p int) { pid = p }
			defer func() { startedHook = nil }()
			_, _, err := run(context.Background(), l, h)
			if c.timeout {
				if err != ErrTimeout {
					t.Fatalf("got %v, want the timeout", err)
				}
			} else if out, ok := strings.CutPrefix(fmt.Sprint(err), probesPrefix); !ok || strings.Trim(strings.ReplaceAll(out, "ALLOWED", ""), ";") != "" {
				t.Fatalf("the Keep's hook: %v (stderr %s)", err, stderr.String())
			}
			_, statErr := os.Lstat(dir)
			warned := strings.Contains(logs.String(), "keep_pid="+strconv.Itoa(pid)) && strings.Contains(logs.String(), digest(wasm))
			t.Logf("log: %s", strings.TrimSpace(logs.String()))
			if c.removed {
				if !os.IsNotExist(statErr) {
					t.Errorf("the module's cache directory is still there (%v)", statErr)
				}
				if !warned {
					t.Errorf("no warning naming the Keep %d and the module", pid)
				}
				return
			}
			if statErr != nil || logs.String() != "" {
				t.Errorf("engine entries within the budget: directory %v, log %q", statErr, logs.String())
			}
		})
	}
}

// TestCacheCheckKeepsEngineOutput: what the engines write for a real
// module passes the check (in the early return too), and stays for the
// next run.
func TestCacheCheckKeepsEngineOutput(t *testing.T) { eachEngine(t, testCacheCheckKeepsEngineOutput) }

func testCacheCheckKeepsEngineOutput(t *testing.T) {
	if missing := hostLacksLayers(); missing != "" {
		testutil.NeedHost(t, "the kernel lacks %s", missing)
	}
	wasm := build(t, "hello")
	dir := filepath.Join(testCacheDir, "sandbox", digest(wasm))
	for range 2 { // compiled, then loaded
		var logs syncBuffer
		_, w := pipe(t)
		null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer null.Close()
		l := &backend.Launch{Workload: keep.Workload{Wasm: wasm}, Files: []*os.File{null, w, null}, Options: keep.Options{
			CacheDir: testCacheDir, Engine: engineOf(t),
			Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
		}}
		code, _, err := run(context.Background(), l, hostOptions{})
		if code != 0 || err != nil || logs.String() != "" {
			t.Fatalf("%d %v; log %q", code, err, logs.String())
		}
	}
	var size int64
	var names []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && p != dir {
			size += fi.Size()
			names = append(names, strings.TrimPrefix(p, dir+"/"))
		}
		return err
	})
	if err != nil || len(names) == 0 {
		t.Fatalf("the module's cache holds %q (%v)", names, err)
	}
	t.Logf("module %d bytes; cache %d bytes (%.1f×; budget %d): %q", len(wasm), size, float64(size)/float64(len(wasm)), cacheBudget(len(wasm)), names)
	if p, err := cacheProblem(dir, cacheBudget(len(wasm))); p != "" || err != nil {
		t.Fatalf("check: %q %v", p, err)
	}
}

// TestEngineCacheNames: the names the engines write (keep/internal/engine)
// pass, others do not.
func TestEngineCacheNames(t *testing.T) {
	h := strings.Repeat("ab", 32)
	ok := map[string][]string{
		"wazero-v1.12.0-amd64-linux":    {h, h + ".123456.tmp"},
		"enarx-wazero-15dbcdf4":         {h, "tmp-42"},
		"wasmtime-v44.0.0-bc084383":     {h + ".cwasm", h + ".sum", "tmp-7"},
		"wasmtime-v40.0.0-rc1-00ff00ff": {h + ".sum"},
	}
	for d, files := range ok {
		is := engineCacheDir(d)
		if is == nil {
			t.Errorf("%s refused", d)
			continue
		}
		for _, f := range files {
			if !is(f) {
				t.Errorf("%s/%s refused", d, f)
			}
		}
		for _, f := range []string{"", "x", h[:63], h + "0", h + ".so", "tmp-", "tmp-1x", ".." + h, h + "..tmp", "../" + h} {
			if is(f) {
				t.Errorf("%s/%s accepted", d, f)
			}
		}
	}
	for _, d := range []string{"", "junk", "wazero-", "wazero-v1-arm64-linux", "enarx-wazero-15DBCDF4", "enarx-wazero-15dbcdf", "wasmtime-v39", "wasmtime--bc084383", "wasmtime-v3/9-bc084383"} {
		if engineCacheDir(d) != nil {
			t.Errorf("%s accepted", d)
		}
	}
}

// TestEndKeepFreezes: when the host returns on the Keep's result, it
// stops the Keep before it checks the cache: every thread is then stopped
// (none in a system call), including one that was writing to the cache
// when the result went out; after the check the Keep is killed. A Keep
// that keeps continuing itself (SIGCONT) cannot hold its host: it is
// killed after keepStopWait and the check follows its exit.
func TestEndKeepFreezes(t *testing.T) {
	if missing := hostLacksLayers(); missing != "" {
		testutil.NeedHost(t, "the kernel lacks %s", missing)
	}
	for i, c := range []struct {
		name, hook string
		mustFreeze bool // else it may also have been killed and waited for
	}{
		{"writing threads", "cache-grow:4", true},
		{"continuing itself", "cache-grow:1;sigcont", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			wasm := fmt.Appendf(bytes.Clone(fakeWasm), "-freeze-%d", i)
			var states []string
			var frozen bool
			haltedHook = func(pid int, f bool) {
				frozen = f
				tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
				for _, task := range tasks {
					b, err := os.ReadFile(task)
					if err != nil {
						continue // reaped
					}
					// pid (comm) state …: comm may hold spaces
					if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) {
						states = append(states, string(b[i+2]))
					}
				}
			}
			defer func() { haltedHook = nil }()
			if c.mustFreeze {
				// Whether the stop works, not how fast a loaded
				// machine stops four busy threads.
				defer func(w time.Duration) { keepStopWait = w }(keepStopWait)
				keepStopWait = time.Minute
			}
			var logs syncBuffer
			l := &backend.Launch{Workload: keep.Workload{Wasm: wasm}, Options: keep.Options{
				Args: []string{"probe", c.hook}, CacheDir: testCacheDir,
				Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
			}}
			start := time.Now()
			_, _, err := run(context.Background(), l, hostOptions{})
			took := time.Since(start)
			if out, ok := strings.CutPrefix(fmt.Sprint(err), probesPrefix); !ok || strings.Trim(strings.ReplaceAll(out, "ALLOWED", ""), ";") != "" {
				t.Fatalf("the Keep's hook: %v", err)
			}
			t.Logf("frozen %v, thread states %q, run took %v", frozen, states, took)
			if !frozen && c.mustFreeze {
				t.Fatalf("the Keep was not stopped (frozen %v)", frozen)
			}
			if frozen {
				if len(states) < 2 {
					t.Fatalf("stopped Keep with %d threads", len(states))
				}
				for _, s := range states {
					if s != "t" && s != "T" {
						t.Fatalf("a thread of the stopped Keep is in state %s (all: %q)", s, states)
					}
				}
			}
			if took > 30*time.Second {
				t.Fatalf("the host took %v to end the Keep", took)
			}
			// The growing file went past the budget (its threads grow it
			// by 64 KiB at a time until stopped) or not; either way what
			// stays is what was checked.
			dir := filepath.Join(testCacheDir, "sandbox", digest(wasm))
			if p, err := cacheProblem(dir, cacheBudget(len(wasm))); p != "" || err != nil {
				t.Fatalf("after the run the cache holds what the check refuses: %s %v (log %s)", p, err, logs.String())
			}
		})
	}
}

// TestFreeze: freeze reports a process stopped only once every thread is,
// stillFrozen notices one continued since, and without a pidfd freeze
// gives up at once (endKeep then kills the Keep and waits for its exit).
func TestFreeze(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperThreads$")
	cmd.Env = append(os.Environ(), "SANDBOX_TEST_THREADS=1")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil { // its threads run
		t.Fatal(err)
	}
	k := &keepCmd{proc: cmd.Process, exited: make(chan struct{}), pidfd: -1}
	go func() { cmd.Wait(); close(k.exited) }()
	if k.freeze() {
		t.Fatal("frozen without a pidfd")
	}
	fd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		testutil.NeedHost(t, "no pidfd_open: %v", err)
	}
	k.pidfd = fd
	defer k.release()
	if !k.freeze() {
		t.Fatal("not frozen")
	}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", cmd.Process.Pid))
	for _, task := range tasks {
		b, _ := os.ReadFile(task)
		if i := bytes.LastIndexByte(b, ')'); i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
			t.Errorf("%s: %s", task, b)
		}
	}
	if len(tasks) < 4 || !k.stillFrozen() {
		t.Fatalf("%d threads; still frozen %v", len(tasks), k.stillFrozen())
	}
	cmd.Process.Signal(syscall.SIGCONT)
	if k.stillFrozen() {
		t.Error("continued, but still frozen")
	}
	k.kill()
	<-k.exited
	if !k.stillFrozen() {
		t.Error("reaped, but not frozen")
	}
}

// TestHelperThreads is TestFreeze's process: busy threads, some in
// system calls.
func TestHelperThreads(t *testing.T) {
	if os.Getenv("SANDBOX_TEST_THREADS") != "1" {
		t.Skip("helper")
	}
	for i := range 4 {
		go func() {
			runtime.LockOSThread()
			for {
				if i%2 == 0 {
					unix.Getpid()
				}
			}
		}()
	}
	fmt.Println("running")
	time.Sleep(time.Minute)
}
