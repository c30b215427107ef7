package guest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/enarx-go/enarx/backend/microvm/internal/channel"
)

// hostEnd is a host driven by a test, connected to a Keep's Serve by a
// socketpair: what a hostile (or simply honest) host sends, and what the
// Keep answers.
type hostEnd struct {
	mux   *channel.Mux
	hello chan channel.Hello
	exit  chan channel.Exit
	done  chan struct{} // closed when Serve returned: the VM would power off
}

// serveKeep runs Serve as a Keep with TEE none and returns the host end.
func serveKeep(t *testing.T) *hostEnd {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	hostFile, keepFile := os.NewFile(uintptr(fds[0]), "host"), os.NewFile(uintptr(fds[1]), "keep")
	hc, err := net.FileConn(hostFile)
	hostFile.Close()
	if err != nil {
		t.Fatal(err)
	}
	h := &hostEnd{hello: make(chan channel.Hello, 1), exit: make(chan channel.Exit, 1),
		done: make(chan struct{})}
	h.mux = channel.New(hc, channel.Host, channel.Handler{
		Control: func(typ uint8, p []byte) error {
			switch typ {
			case channel.TypeHello:
				var m channel.Hello
				if err := channel.Decode(p, &m); err != nil {
					return err
				}
				h.hello <- m
			case channel.TypeExit:
				var m channel.Exit
				if err := channel.Decode(p, &m); err != nil {
					return err
				}
				h.exit <- m
				h.mux.Post(channel.TypeExitAck, nil)
			}
			return nil
		},
		Open: func(*channel.Stream, channel.Open) error { return errors.New("refused") },
	})
	go h.mux.Run()
	tmp := t.TempDir()
	go func() {
		defer close(h.done)
		Serve(context.Background(), keepFile, Env{TEE: "none", TempDir: tmp})
	}()
	t.Cleanup(func() {
		h.mux.Close()
		select {
		case <-h.done:
		case <-time.After(time.Minute):
			t.Error("Serve did not return after the channel ended")
		}
	})
	select {
	case <-h.hello:
	case <-time.After(time.Minute):
		t.Fatal("no hello from the Keep")
	}
	return h
}

// send opens a stream of role and writes b on it, whole.
func (h *hostEnd) send(t *testing.T, role string, b []byte) {
	t.Helper()
	st, err := h.mux.Open(channel.Open{Role: role})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		st.Write(b)
		st.CloseWrite()
	}()
}

// waitExit returns the exit status the Keep reported, failing if the
// Keep ended without one.
func (h *hostEnd) waitExit(t *testing.T) channel.Exit {
	t.Helper()
	select {
	case e := <-h.exit:
		return e
	case <-h.done:
		select {
		case e := <-h.exit: // sent just before the end
			return e
		case <-time.After(10 * time.Second):
		}
		t.Fatal("the Keep ended without reporting an exit status")
	case <-time.After(2 * time.Minute):
		t.Fatal("no exit status from the Keep")
	}
	return channel.Exit{}
}

func uleb(n int) []byte {
	var b []byte
	for {
		c := byte(n & 0x7f)
		if n >>= 7; n == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func section(id byte, body []byte) []byte {
	return append(append([]byte{id}, uleb(len(body))...), body...)
}
func wasmName(s string) []byte { return append(uleb(len(s)), s...) }

// trapModule is a module whose _start traps at once, and whose name
// section calls that function fname: the trap's error text (with its wasm
// backtrace) names it.
func trapModule(fname string) []byte {
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = append(m, section(1, []byte{1, 0x60, 0, 0})...)                                  // type () -> ()
	m = append(m, section(3, []byte{1, 0})...)                                           // one function
	m = append(m, section(7, append(append([]byte{1}, wasmName("_start")...), 0, 0))...) // export it
	m = append(m, section(10, []byte{1, 3, 0, 0x00, 0x0b})...)                           // unreachable
	names := append([]byte{1, 0}, wasmName(fname)...)                                    // function 0's name
	sub := append(append([]byte{1}, uleb(len(names))...), names...)                      // function names subsection
	return append(m, section(0, append(wasmName("name"), sub...))...)
}

// TestExitStatusWithLongError: a run that fails with an error text longer
// than a control frame may carry (here a trap whose backtrace names a
// function with a 70 KB name: a module's name section is the workload
// author's) still reports its exit status and a bounded error. The Keep
// sent nothing before, the host saw the channel end instead, and reported
// that the Keep failed rather than what the workload did.
func TestExitStatusWithLongError(t *testing.T) {
	for _, tc := range []struct {
		name, fname string
	}{
		{"short", "boom"},
		{"long", strings.Repeat("f", 70000)},
		{"long and escaped", strings.Repeat("<\x01", 35000)}, // JSON makes each byte six
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := serveKeep(t)
			if err := h.mux.Send(channel.TypeLaunch, channel.Encode(channel.Launch{Version: channel.Version, HasConfig: true})); err != nil {
				t.Fatal(err)
			}
			h.send(t, channel.RoleConfig, []byte("args = []\n"))
			h.send(t, channel.RoleWasm, trapModule(tc.fname))
			e := h.waitExit(t)
			if e.Code != 1 || !strings.Contains(e.Error, "trapped") {
				t.Fatalf("exit status %d, error %.200q; want 1 and the trap", e.Code, e.Error)
			}
			if len(e.Error) > maxExitText+64 {
				t.Errorf("the exit status carries %d bytes of error text (at most %d)", len(e.Error), maxExitText)
			}
		})
	}
}

// TestStdioFiletype: the filetype the host sends with a stdio stream is
// what the workload's fd_fdstat_get reports, so the Keep takes only those
// a byte stream can have (what keep.FiletypeOf gives for a pipe, a
// device, a regular file or a stream socket). Any other value, outside
// WASI's range or a directory, symbolic link or datagram socket, fails
// the run with an error that says so, at once (it used to be passed on to
// the workload as it came).
func TestStdioFiletype(t *testing.T) {
	for _, tc := range []struct {
		ftype uint8
		ok    bool
	}{
		{0, true}, {1, true}, {2, true}, {4, true}, {6, true}, // unknown (pipe), block, char, regular, stream socket
		{3, false}, {5, false}, {7, false}, // directory, datagram socket, symbolic link
		{8, false}, {255, false}, // not WASI filetypes
	} {
		t.Run(fmt.Sprint(tc.ftype), func(t *testing.T) {
			h := serveKeep(t)
			if err := h.mux.Send(channel.TypeLaunch, channel.Encode(channel.Launch{Version: channel.Version, HasConfig: true})); err != nil {
				t.Fatal(err)
			}
			h.send(t, channel.RoleConfig, []byte("[[files]]\nkind = \"stdin\"\n"))
			h.send(t, channel.RoleWasm, trapModule("boom"))
			st, err := h.mux.Open(channel.Open{Role: channel.RoleFile, FD: 0, Filetype: tc.ftype})
			if err != nil {
				t.Fatal(err)
			}
			st.CloseWrite()
			e := h.waitExit(t)
			if tc.ok {
				// The stream was taken: the module ran (and trapped).
				if e.Code != 1 || !strings.Contains(e.Error, "trapped") {
					t.Fatalf("exit status %d, error %.300q; want 1 and the trap", e.Code, e.Error)
				}
				return
			}
			if e.Code == 0 || strings.Contains(e.Error, "trapped") || !strings.Contains(e.Error, "fd 0 (stdin") ||
				!strings.Contains(e.Error, fmt.Sprintf("filetype %d", tc.ftype)) {
				t.Fatalf("exit status %d, error %.300q; want the run refused for the stdin stream's filetype %d", e.Code, e.Error, tc.ftype)
			}
		})
	}
}
