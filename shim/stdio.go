package shim

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/fifo"
)

// taskIO connects a keep host's stdio to containerd's FIFOs through pipes,
// as containerd's runc shim does for a container without a terminal: the
// keep host gets plain pipes, and the shim copies between them and the
// FIFOs, so a client that goes away (EPIPE) never blocks or kills the Keep,
// and CloseIO can end the workload's stdin.
type taskIO struct {
	// child are the keep host's fds 0, 1, 2 (closed here once it has them).
	child [3]*os.File
	// stdin is the shim's end of the keep host's stdin (nil without one).
	stdin *os.File
	// stdinFIFO is containerd's stdin FIFO (nil without one).
	stdinFIFO io.Closer
	// stdinDone is closed when the copy from the stdin FIFO has ended
	// (nil without one).
	stdinDone chan struct{}
	copies    sync.WaitGroup
	closeMu   sync.Mutex
}

// openIO opens the FIFOs containerd named (an empty path is /dev/null).
// ctx must live as long as the task: it bounds the FIFOs' opening.
func openIO(ctx context.Context, stdin, stdout, stderr string) (_ *taskIO, err error) {
	t := &taskIO{}
	var opened []io.Closer
	defer func() {
		if err != nil {
			for _, c := range opened {
				c.Close()
			}
			t.closeChild()
		}
	}()
	devnull := func(flag int) (*os.File, error) {
		f, err := os.OpenFile(os.DevNull, flag, 0)
		if err == nil {
			opened = append(opened, f)
		}
		return f, err
	}
	if stdin == "" {
		if t.child[0], err = devnull(os.O_RDONLY); err != nil {
			return nil, err
		}
	} else {
		in, err := fifo.OpenFifo(ctx, stdin, syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return nil, fmt.Errorf("opening the task's stdin FIFO: %w", err)
		}
		opened = append(opened, in)
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		t.child[0], t.stdin, t.stdinFIFO, t.stdinDone = r, w, in, make(chan struct{})
		go func() {
			defer close(t.stdinDone)
			_, _ = io.Copy(w, in)
			in.Close()
			t.closeStdinPipe()
		}()
	}
	for i, p := range []string{stdout, stderr} {
		fd := i + 1
		if p == "" {
			if t.child[fd], err = devnull(os.O_WRONLY); err != nil {
				return nil, err
			}
			continue
		}
		out, err := fifo.OpenFifo(ctx, p, syscall.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return nil, fmt.Errorf("opening the task's FIFO %s: %w", p, err)
		}
		opened = append(opened, out)
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		t.child[fd] = w
		t.copies.Add(1)
		go func() {
			defer t.copies.Done()
			if _, err := io.Copy(out, r); err != nil {
				// The reader went away: keep draining, so the Keep never
				// blocks on a full pipe.
				_, _ = io.Copy(io.Discard, r)
			}
			out.Close()
			r.Close()
		}()
	}
	return t, nil
}

// closeChild closes the keep host's ends (after it has started, or when it
// never will).
func (t *taskIO) closeChild() {
	for i, f := range t.child {
		if f != nil {
			f.Close()
			t.child[i] = nil
		}
	}
}

// stdinDrain is how long CloseIO lets the stdin FIFO drain before it
// ends the workload's stdin anyway (a client that keeps its end open).
const stdinDrain = 2 * time.Second

// CloseStdin ends the workload's stdin (CloseIO) once what the client
// wrote before is through. A client sends CloseIO when its input ends,
// with up to a pipe's worth still in the FIFO: closing the keep host's
// pipe then would cut the input short (8 MiB through ctr run lost the
// last 64–96 KiB). So the pipe is closed when the copy from the FIFO ends
// (the client closes its end after CloseIO, as ctr does), or after
// stdinDrain for a client that keeps it open.
//
// The shim holds no write end of the FIFO of its own (containerd's runc
// shim does, and closes it on CloseIO): ctr run sends CloseIO only if its
// input ends after the task was created, so with a short input it never
// comes, and a held write end would keep the workload's stdin open
// forever.
func (t *taskIO) CloseStdin() {
	if t.stdinDone == nil {
		t.closeStdinPipe()
		return
	}
	go func() {
		timer := time.NewTimer(stdinDrain)
		defer timer.Stop()
		select {
		case <-t.stdinDone:
		case <-timer.C:
		}
		t.closeStdinPipe()
	}()
}

// closeStdinPipe ends the keep host's stdin pipe.
func (t *taskIO) closeStdinPipe() {
	t.closeMu.Lock()
	defer t.closeMu.Unlock()
	if t.stdin != nil {
		t.stdin.Close()
		t.stdin = nil
	}
}

// close ends stdin and the keep host's ends, when the task is deleted.
func (t *taskIO) close() {
	t.closeStdinPipe()
	if t.stdinFIFO != nil {
		t.stdinFIFO.Close()
	}
	t.closeChild()
}

// wait returns once everything the keep host wrote has been copied out
// (all its copies of the pipes' write ends are closed).
func (t *taskIO) wait() { t.copies.Wait() }
