package sandbox

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/config"
	"github.com/enarx-go/enarx/internal/testutil"
)

// hangGuard bounds the waits of these tests; no test expects to come
// near it.
const hangGuard = time.Minute

func init() {
	// fd-kind:<fd>: what the descriptor is (fifo, chr, reg, …) and
	// whether it is a terminal (TCGETS: ALLOWED) in the Keep.
	containmentHooks["fd-kind"] = func(arg string) string {
		var fd int
		fmt.Sscan(arg, &fd)
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return "fstat=" + errnoString(err)
		}
		kind := map[uint32]string{unix.S_IFIFO: "fifo", unix.S_IFCHR: "chr", unix.S_IFREG: "reg", unix.S_IFSOCK: "sock"}[st.Mode&unix.S_IFMT]
		_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		return kind + "," + errnoString(err)
	}
}

// ptyStdin is a pseudo-terminal for a Keep's stdin: its master, whose
// output (the terminal's echo) is drained, and its slave.
func ptyStdin(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, s := openPTY(t)
	if m == nil {
		testutil.NeedHost(t, "no pseudo-terminal here")
	}
	go io.Copy(io.Discard, m) // ends once the master is closed
	return m, s
}

// ttyLaunch is a fake Keep's launch with stdin the terminal in and
// stdout the pipe out, recording the relays it starts in *relays.
func ttyLaunch(t *testing.T, in, out *os.File, relays *[]*ttyRelay, args ...string) *backend.Launch {
	t.Helper()
	relayHook = func(r *ttyRelay) { *relays = append(*relays, r) }
	t.Cleanup(func() { relayHook = nil })
	l := fake(args...)
	l.Config = &config.Config{Files: []config.File{{Kind: config.KindStdin}, {Kind: config.KindStdout}}}
	l.Files = []*os.File{in, out}
	return l
}

// relaysEnded fails t unless every relay has ended.
func relaysEnded(t *testing.T, relays []*ttyRelay) {
	t.Helper()
	if len(relays) == 0 {
		t.Fatal("no terminal relay started")
	}
	for _, r := range relays {
		select {
		case <-r.done:
		default:
			t.Error("the terminal's relay still runs after the run")
		}
	}
}

// TestKeepTTYStdinIsAPipe: a Keep whose stdin is the user's terminal gets
// a pipe, not the terminal: in a session of its own the terminal is not
// its controlling one, and job control would not stop it reading the
// user's keystrokes from the background.
func TestKeepTTYStdinIsAPipe(t *testing.T) {
	_, pts := ptyStdin(t)
	_, outW := pipe(t)
	var relays []*ttyRelay
	l := ttyLaunch(t, pts, outW, &relays, "probe", "fd-kind:4;fd-kind:5")
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	code, _, err := run(ctx, l, hostOptions{})
	out, ok := strings.CutPrefix(fmt.Sprint(err), probesPrefix)
	if code != 0 || !ok {
		t.Fatalf("probe: %d %v", code, err)
	}
	if want := "fifo,ENOTTY;fifo,ENOTTY"; out != want {
		t.Errorf("the Keep's stdin and stdout: %s; want %s (stdin a pipe, not the terminal)", out, want)
	}
	relaysEnded(t, relays)
}

// TestKeepTTYStdinRelayed: what is typed on the terminal reaches the
// Keep's stdin line by line as it is typed (the Keep echoes each line
// before the next is typed), and ^D, the terminal's end of file, ends
// the Keep's read.
func TestKeepTTYStdinRelayed(t *testing.T) {
	m, pts := ptyStdin(t)
	outR, outW := pipe(t)
	var relays []*ttyRelay
	l := ttyLaunch(t, pts, outW, &relays, "echo")
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	type ran struct {
		code int
		err  error
	}
	done := make(chan ran, 1)
	go func() {
		code, _, err := run(ctx, l, hostOptions{})
		done <- ran{code, err}
	}()
	got := make(chan string)
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := outR.Read(b)
			if err != nil {
				return
			}
			got <- string(b[:n])
		}
	}()
	for _, line := range []string{"first line\n", "second\n"} {
		if _, err := m.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
		var echoed string
		for echoed != line {
			select {
			case s := <-got:
				echoed += s
				if !strings.HasPrefix(line, echoed) {
					t.Fatalf("the Keep echoed %q; want %q", echoed, line)
				}
			case r := <-done:
				t.Fatalf("the Keep ended before echoing %q: %d %v", line, r.code, r.err)
			case <-time.After(hangGuard):
				t.Fatalf("%q typed on the terminal never reached the Keep", line)
			}
		}
	}
	if _, err := m.Write([]byte{4}); err != nil { // ^D (VEOF), canonical mode
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.code != 0 || r.err != nil {
			t.Fatalf("echo: %d %v", r.code, r.err)
		}
	case <-time.After(hangGuard):
		t.Fatal("^D on the terminal did not end the Keep's read")
	}
	relaysEnded(t, relays)
}

// TestKeepTTYStdinRelayStops: a Keep that ends without reading its
// terminal stdin leaves the relay no reader: run stops it, and input
// typed afterwards is the terminal's other readers' again (the shell's).
func TestKeepTTYStdinRelayStops(t *testing.T) {
	m, pts := ptyStdin(t)
	_, outW := pipe(t)
	var relays []*ttyRelay
	l := ttyLaunch(t, pts, outW, &relays, "exit", "0")
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	if code, _, err := run(ctx, l, hostOptions{}); code != 0 || err != nil {
		t.Fatalf("exit 0: %d %v", code, err)
	}
	relaysEnded(t, relays)
	if _, err := m.Write([]byte("for the shell\n")); err != nil {
		t.Fatal(err)
	}
	pfd := []unix.PollFd{{Fd: int32(pts.Fd()), Events: unix.POLLIN}}
	if n, err := unix.Poll(pfd, int(hangGuard/time.Millisecond)); n != 1 {
		t.Fatalf("the terminal's input after the run did not stay for its readers: %v", err)
	}
	b := make([]byte, 64)
	n, err := pts.Read(b)
	if string(b[:n]) != "for the shell\n" {
		t.Errorf("the terminal's input after the run: %q %v", b[:n], err)
	}
}

// TestStdinRelayOnlyForTerminals: only a terminal stdin entry is
// relayed; a pipe, a regular file and /dev/null, and a terminal as
// stdout, reach the Keep directly.
func TestStdinRelayOnlyForTerminals(t *testing.T) {
	_, pts := ptyStdin(t)
	r, _ := pipe(t)
	reg, err := os.CreateTemp(t.TempDir(), "in")
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	for _, c := range []struct {
		name    string
		f       *os.File
		kind    config.Kind
		relayed bool
	}{
		{"terminal stdin", pts, config.KindStdin, true},
		{"pipe stdin", r, config.KindStdin, false},
		{"file stdin", reg, config.KindStdin, false},
		{"/dev/null stdin", null, config.KindStdin, false},
		{"terminal stdout", pts, config.KindStdout, false},
	} {
		l := fake()
		l.Config = &config.Config{Files: []config.File{{Kind: c.kind}}}
		l.Files = []*os.File{c.f}
		k, err := openKeepFDs(context.Background(), l, newLaunch(context.Background(), l), true)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(k.relays) == 1; got != c.relayed {
			t.Errorf("%s: relayed %v; want %v", c.name, got, c.relayed)
		}
		if c.relayed {
			var st unix.Stat_t
			if err := unix.Fstat(int(k.extra[1].Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
				t.Errorf("%s: the Keep gets mode %#o %v; want a pipe", c.name, st.Mode, err)
			}
		}
		k.close()
	}
}

// TestTTYRelay: the relay on its own, from a terminal it opens again (a
// pseudo-terminal's slave) and from one it cannot (a master, whose
// input is what is written to the slave): bytes pass as written, the
// terminal's hang-up is the pipe's end of file, and stop ends a relay
// waiting for input.
func TestTTYRelay(t *testing.T) {
	for _, c := range []struct {
		name string
		own  bool
	}{{"slave", true}, {"master", false}} {
		t.Run(c.name, func(t *testing.T) {
			m, s := openPTY(t)
			if m == nil {
				testutil.NeedHost(t, "no pseudo-terminal here")
			}
			in, typeIn := s, m
			if !c.own {
				in, typeIn = m, s
				var tio *unix.Termios
				rc, _ := s.SyscallConn()
				rc.Control(func(fd uintptr) { tio, _ = unix.IoctlGetTermios(int(fd), unix.TCGETS) })
				tio.Oflag &^= unix.OPOST // the slave's output as written
				rc.Control(func(fd uintptr) { unix.IoctlSetTermios(int(fd), unix.TCSETS, tio) })
			}
			// stop with the relay waiting for input, then the hang-up.
			for _, end := range []string{"stop", "hangup"} {
				r, keepEnd, err := newTTYRelay(in, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer keepEnd.Close()
				if r.own != c.own {
					t.Fatalf("own description: %v; want %v", r.own, c.own)
				}
				r.start()
				if _, err := typeIn.Write([]byte("abc\n")); err != nil {
					t.Fatal(err)
				}
				keepEnd.SetReadDeadline(time.Now().Add(hangGuard))
				b := make([]byte, 64)
				n, err := keepEnd.Read(b)
				if string(b[:n]) != "abc\n" {
					t.Fatalf("relayed %q %v; want %q", b[:n], err, "abc\n")
				}
				if end == "stop" {
					r.stop()
				} else {
					typeIn.Close()
				}
				select {
				case <-r.done:
				case <-time.After(hangGuard):
					t.Fatalf("%s: the relay did not end", end)
				}
				if n, err := keepEnd.Read(b); n != 0 || err != io.EOF {
					t.Errorf("%s: the Keep's end reads %q %v; want end of file", end, b[:n], err)
				}
				r.stop() // again: no effect
			}
		})
	}
}

// TestTTYRelayNotStarted: a relay whose Keep did not start closes what
// it opened.
func TestTTYRelayNotStarted(t *testing.T) {
	_, pts := openPTY(t)
	if pts == nil {
		testutil.NeedHost(t, "no pseudo-terminal here")
	}
	r, keepEnd, err := newTTYRelay(pts, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer keepEnd.Close()
	fds := []int{r.in, r.w, r.wake}
	r.stop()
	for _, fd := range fds {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
			t.Errorf("fd %d still open after stop: %v", fd, err)
		}
	}
	b := make([]byte, 1)
	if n, err := keepEnd.Read(b); n != 0 || err != io.EOF {
		t.Errorf("the Keep's end reads %q %v; want end of file", b[:n], err)
	}
}
