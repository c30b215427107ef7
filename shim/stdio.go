package shim

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"

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
		t.child[0], t.stdin, t.stdinFIFO = r, w, in
		go func() {
			_, _ = io.Copy(w, in)
			in.Close()
			t.CloseStdin()
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

// CloseStdin ends the workload's stdin (CloseIO, or the FIFO's end).
func (t *taskIO) CloseStdin() {
	t.closeMu.Lock()
	defer t.closeMu.Unlock()
	if t.stdin != nil {
		t.stdin.Close()
		t.stdin = nil
	}
}

// close ends stdin and the keep host's ends, when the task is deleted.
func (t *taskIO) close() {
	t.CloseStdin()
	if t.stdinFIFO != nil {
		t.stdinFIFO.Close()
	}
	t.closeChild()
}

// wait returns once everything the keep host wrote has been copied out
// (all its copies of the pipes' write ends are closed).
func (t *taskIO) wait() { t.copies.Wait() }
