package sandbox

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/config"
	"github.com/enarx-go/enarx/internal/testutil"
)

func init() {
	// tty-access:<fd>,…: for each descriptor, a read (non-blocking, on
	// the Keep's own description) and a one-byte write, as a workload
	// that escaped wasm could try.
	containmentHooks["tty-access"] = func(arg string) string {
		var out []string
		for _, s := range strings.Split(arg, ",") {
			fd, _ := strconv.Atoi(s)
			r := "read"
			fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
			if err == nil {
				_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl|unix.O_NONBLOCK)
			}
			if err == nil {
				var n int
				b := make([]byte, 64)
				if n, err = unix.Read(fd, b); err == nil {
					r = "read:" + strconv.Quote(string(b[:n]))
				}
			}
			if err != nil {
				r = errnoString(err)
			}
			_, err = unix.Write(fd, []byte("w"))
			out = append(out, fmt.Sprintf("%d:r=%s,w=%s", fd, r, errnoString(err)))
		}
		return strings.Join(out, " ")
	}
}

// TestKeepTTYOneWay: the user's terminal, which a shell opens for reading
// and writing and hands to a command as stdin, stdout and stderr alike,
// reaches the Keep only in the direction it uses each descriptor in: its
// own stderr and the stdout and stderr entries for writing, the stdin
// entry for reading. Otherwise a Keep whose workload escaped wasm could
// read the terminal through its output descriptors — with stdin not the
// terminal (`enarx run app.wasm </dev/null &`), the keystrokes the user
// types to the shell meanwhile: the Keep is in a session of its own, so
// the terminal is not its controlling one and job control (SIGTTIN) does
// not stop it as it stops a background process of the shell that reads.
func TestKeepTTYOneWay(t *testing.T) {
	m, pts := openPTY(t)
	if m == nil {
		testutil.NeedHost(t, "no pseudo-terminal here")
	}
	// Typed before the Keep starts: a line waits in the terminal's input.
	if _, err := m.Write([]byte("typed\n")); err != nil {
		t.Fatal(err)
	}
	go func() { // the terminal's echo and the Keep's writes
		b := make([]byte, 4096)
		for {
			if _, err := m.Read(b); err != nil {
				return
			}
		}
	}()
	l := fake("probe", "tty-access:2,4,5,6")
	l.Config = &config.Config{Files: []config.File{{Kind: config.KindStdin}, {Kind: config.KindStdout}, {Kind: config.KindStderr}}}
	l.Files = []*os.File{pts, pts, pts}
	code, _, err := run(context.Background(), l, hostOptions{stderr: pts})
	out, ok := strings.CutPrefix(fmt.Sprint(err), probesPrefix)
	if code != 0 || !ok {
		t.Fatalf("probe: %d %v", code, err)
	}
	got := strings.Fields(out)
	want := []string{"2:r=EBADF,w=ALLOWED", "4:r=*,w=EBADF", "5:r=EBADF,w=ALLOWED", "6:r=EBADF,w=ALLOWED"}
	for i, w := range want {
		g := ""
		if i < len(got) {
			g = got[i]
		}
		if before, ok := strings.CutSuffix(w, "*,w=EBADF"); ok {
			// stdin: readable (the line, or nothing left), not writable
			if !strings.HasPrefix(g, before) || strings.HasPrefix(g, before+"EBADF") || !strings.HasSuffix(g, ",w=EBADF") {
				t.Errorf("stdin in the Keep: %s; want readable, not writable", g)
			}
			continue
		}
		if g != w {
			t.Errorf("in the Keep: %s; want %s (the terminal written to only)", g, w)
		}
	}
}
