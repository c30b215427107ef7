package wasi

import (
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/enarx-go/enarx/keep/internal/fd"
)

// TestFullTableOpenChangesNothing: a path_open that cannot have a
// descriptor (the table is full: EMFILE) neither creates nor truncates
// the file it names, as open(2), which takes the descriptor first.
// Before, the file was created or truncated, then the descriptor
// refused: a workload at its descriptor limit lost a file's contents.
func TestFullTableOpenChangesNothing(t *testing.T) { eachEngine(t, testFullTableOpenChangesNothing) }

func testFullTableOpenChangesNothing(t *testing.T, eng string) {
	e, fs := newFSEnv(t, eng)
	f := e.open(preFD, "f", oflagCreat, fd.RightFdWrite, 0)
	e.put(bufOff, []byte("keep me"))
	e.iov(iovOff, bufOff, 7)
	e.expect(ESUCCESS, "fd_write", f, iovOff, 1, resOff)
	// Fill the table.
	p, n := e.str(pathOff, ".")
	for i := 0; ; i++ {
		if i > fd.MaxFDs {
			t.Fatal("the table never filled")
		}
		errno := e.call("path_open", preFD, 0, p, n, 0, fd.RightFdReaddir, 0, 0, resOff)
		if errno == EMFILE {
			break
		}
		if errno != ESUCCESS {
			t.Fatalf("path_open . = errno %d", errno)
		}
	}
	before := fs.snapshot()
	p, n = e.str(pathOff, "f")
	e.expect(EMFILE, "path_open", preFD, 0, p, n, oflagTrunc, fd.RightFdWrite, 0, 0, resOff)
	p, n = e.str(pathOff, "new")
	e.expect(EMFILE, "path_open", preFD, 0, p, n, oflagCreat, fd.RightFdWrite, 0, 0, resOff)
	e.expect(EMFILE, "path_open", preFD, 0, p, n, oflagCreat|oflagExcl, fd.RightFdWrite, 0, 0, resOff)
	if after := fs.snapshot(); after != before {
		t.Fatalf("a path_open refused with EMFILE changed the file system:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestFullTableAcceptKeepsConnection: a sock_accept that cannot have a
// descriptor (EMFILE) leaves the connection queued, as accept(2) does, to
// be accepted once a descriptor is free. Before, it was accepted and
// closed: each try of a server at its descriptor limit dropped a client.
func TestFullTableAcceptKeepsConnection(t *testing.T) {
	eachEngine(t, testFullTableAcceptKeepsConnection)
}

func testFullTableAcceptKeepsConnection(t *testing.T, eng string) {
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	lst, err := fd.NewTCPListener(t.Context(), l, nil)
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { lst.Close() })
	files := []fd.File{lst}
	for len(files) < fd.MaxFDs {
		files = append(files, fd.Null{})
	}
	e := newEnv(t, eng, files...)
	client := dial(t, l)
	for i := 0; ; i++ {
		if n, _ := listenBacklog(l); n == 1 {
			break
		}
		if i == 1000 {
			t.Fatal("the connection never reached the listen backlog")
		}
		time.Sleep(time.Millisecond)
	}
	// Non-blocking: a dropped connection makes the last accept EAGAIN
	// rather than wait.
	e.expect(ESUCCESS, "fd_fdstat_set_flags", 0, uint64(fd.FlagNonblock))
	e.expect(EMFILE, "sock_accept", 0, 0, 16)
	e.expect(EMFILE, "sock_accept", 0, 0, 16)
	e.expect(ESUCCESS, "fd_close", 1)
	e.expect(ESUCCESS, "sock_accept", 0, 0, 16)
	nfd := uint64(e.u32(16))
	e.put(1000, []byte("hello"))
	e.iov(100, 1000, 5)
	e.expect(ESUCCESS, "fd_write", nfd, 100, 1, 8)
	buf := make([]byte, 5)
	if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("the client read %q, %v: its connection was not kept for the guest", buf, err)
	}
}

// closeFails is a stream whose Close fails (as a TLS socket's does when
// its close_notify cannot be sent, or a sealed volume's when its commit
// fails), after closing.
type closeFails struct{ fd.Null }

func (closeFails) Close() error { return syscall.EIO }

// TestRenumberOverFailingClose: fd_renumber moves the descriptor whatever
// closing the one it replaces says (as dup2(2), which loses that error):
// it succeeds, so the guest knows the source descriptor is gone. Before,
// it moved the descriptor and answered the close's error, as if nothing
// had happened.
func TestRenumberOverFailingClose(t *testing.T) { eachEngine(t, testRenumberOverFailingClose) }

func testRenumberOverFailingClose(t *testing.T, eng string) {
	e := newEnv(t, eng, fd.Null{}, closeFails{})
	e.expect(ESUCCESS, "fd_renumber", 0, 1)
	e.expect(EBADF, "fd_fdstat_get", 0, 16)
	e.expect(ESUCCESS, "fd_fdstat_get", 1, 16)
	// fd_close reports it: the descriptor is gone all the same.
	e2 := newEnv(t, eng, closeFails{})
	e2.expect(EIO, "fd_close", 0)
	e2.expect(EBADF, "fd_close", 0)
}
