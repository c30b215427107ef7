package wasi

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/enarx-go/enarx/keep/internal/fd"
)

// deafConn is a chanConn whose host takes nothing written (a channel
// stream whose window the host never opens): a blocking write waits until
// the conn is closed, a non-blocking one says EAGAIN.
type deafConn struct {
	*chanConn
}

func (c deafConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.closed {
		c.cond.Wait()
	}
	return 0, net.ErrClosed
}

func (c deafConn) TryWrite(p []byte) (int, error) { return 0, fd.ErrWouldBlock }

// TestConnStdoutHostNotReading: fd_write to a stdout carried by a channel
// stream whose host does not read is a wait that a cancelled run ends
// (EINTR, unwinding with the run's cause), for a blocking guest and for a
// non-blocking one alike (Go's wasip1 runtime makes stdio non-blocking;
// stdio writes are whole, fd.WholeWriter). Before, the write waited in the
// host for the host's window, whatever the run's context said: the Keep
// could not be stopped while its host did not read its stdout.
func TestConnStdoutHostNotReading(t *testing.T) { eachEngine(t, testConnStdoutHostNotReading) }

func testConnStdoutHostNotReading(t *testing.T, eng string) {
	c := deafConn{newChanConn()}
	out, err := fd.NewConnStdio(c, true, fd.FiletypeCharacterDevice)
	if err != nil {
		t.Fatal(err)
	}
	// The table's cleanup does not close it: the Conn's Close ends a
	// write that still waits when the test fails.
	t.Cleanup(func() { out.Close() })
	e := newEnv(t, eng, fd.Null{}, out)
	e.iov(100, 1024, 4096)

	call := func(ctx context.Context) (Errno, error) {
		type result struct {
			errno Errno
			err   error
		}
		done := make(chan result, 1)
		go func() {
			errno, err, _ := e.s.Call(ctx, e.inst, "fd_write", 1, 100, 1, 8)
			done <- result{errno, err}
		}()
		select {
		case r := <-done:
			return r.errno, r.err
		case <-time.After(10 * time.Second): // a safety net, not a verdict on time
			t.Fatal("fd_write to a stdout whose host does not read still waits in the host")
			return 0, nil
		}
	}

	ctx, cancel := context.WithCancelCause(context.Background())
	stopped := errors.New("run stopped")
	timer := time.AfterFunc(20*time.Millisecond, func() { cancel(stopped) })
	defer timer.Stop()
	if errno, err := call(ctx); errno != EINTR || !errors.Is(err, stopped) {
		t.Errorf("blocking fd_write in a cancelled run = errno %d, unwound with %v; want EINTR and the run's cause", errno, err)
	}

	e.expect(ESUCCESS, "fd_fdstat_set_flags", 1, uint64(fd.FlagNonblock))
	ctx, cancel = context.WithCancelCause(context.Background())
	timer = time.AfterFunc(20*time.Millisecond, func() { cancel(stopped) })
	defer timer.Stop()
	if errno, err := call(ctx); errno != EINTR || !errors.Is(err, stopped) {
		t.Errorf("non-blocking fd_write in a cancelled run = errno %d, unwound with %v; want EINTR and the run's cause", errno, err)
	}
}
