package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/enarx-go/enarx/backend/microvm/internal/channel"
	"github.com/enarx-go/enarx/keep"
)

const (
	// backlog bounds the connections the host may queue for one listen
	// entry before the workload accepts them; further ones are reset.
	backlog = 128
	// fileWait bounds how long the Keep waits for the host to open the
	// stream of a stdio or connect entry.
	fileWait = 2 * time.Minute
)

// files holds the streams the host opened for [[files]] entries, by index,
// until the Keep runtime takes them. It implements keep.Conns.
type files struct {
	mu      sync.Mutex
	queues  map[int][]pending
	notify  map[int]func()
	closed  map[int]bool
	bad     map[int]error // the host sent an unacceptable stream: the entry fails
	changed chan struct{}
	err     error // the channel ended
}

type pending struct {
	s     *channel.Stream
	ftype keep.Filetype
}

func newFiles() *files {
	return &files{queues: map[int][]pending{}, notify: map[int]func(){}, closed: map[int]bool{}, bad: map[int]error{},
		changed: make(chan struct{})}
}

// add queues a stream for entry o.FD (on the reading goroutine). A stream
// with a filetype streamFiletype refuses is reset and fails its entry:
// the Keep runtime gets the error instead of a stream, and the run ends
// with it.
func (f *files) add(s *channel.Stream, o channel.Open) error {
	if o.FD < 0 || o.FD >= keep.MaxFDs {
		return fmt.Errorf("no [[files]] entry %d", o.FD)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed[o.FD] {
		return fmt.Errorf("[[files]] entry %d is closed", o.FD)
	}
	if err := f.bad[o.FD]; err != nil {
		return err
	}
	ftype, err := streamFiletype(o.Filetype)
	if err != nil {
		f.bad[o.FD] = err
		f.signal(o.FD)
		return err
	}
	if len(f.queues[o.FD]) >= backlog {
		return fmt.Errorf("[[files]] entry %d has %d connections waiting", o.FD, backlog)
	}
	s.SetPeer(o.Peer)
	f.queues[o.FD] = append(f.queues[o.FD], pending{s: s, ftype: ftype})
	f.signal(o.FD)
	return nil
}

// WASI preview1 filetypes (the values of keep.Filetype).
const (
	filetypeUnknown keep.Filetype = iota
	filetypeBlockDevice
	filetypeCharacterDevice
	filetypeDirectory
	filetypeRegularFile
	filetypeSocketDgram
	filetypeSocketStream
	filetypeSymbolicLink
)

// streamFiletype checks the filetype the host sent with the stream of a
// [[files]] entry: for a stdio entry it is what the workload's
// fd_fdstat_get and fd_filestat_get report (the Keep runtime uses it for
// nothing else, and ignores it for other entries, which send none). An
// honest host sends keep.FiletypeOf of its side of the entry: unknown (a
// pipe or FIFO), a block or character device, a regular file or a stream
// socket, the things bytes can flow through; or a directory, which none
// can. Anything else is refused: a value outside WASI's range, or a
// directory, a symbolic link or a datagram socket, which would have the
// workload take a byte stream for a directory to list, a link to follow
// or a message-preserving socket it is not.
func streamFiletype(t uint8) (keep.Filetype, error) {
	switch ft := keep.Filetype(t); ft {
	case filetypeUnknown, filetypeBlockDevice, filetypeCharacterDevice, filetypeRegularFile, filetypeSocketStream:
		return ft, nil
	case filetypeDirectory:
		return 0, errors.New("the host sent this entry's stream as a directory (WASI filetype 3), which no stream is: if its host file is a directory, give the Keep a file, pipe, terminal or socket instead")
	case filetypeSocketDgram, filetypeSymbolicLink:
		return 0, fmt.Errorf("the host sent this entry's stream with WASI filetype %d (a datagram socket or a symbolic link), which no stream the host sends is", t)
	}
	return 0, fmt.Errorf("the host sent this entry's stream with filetype %d, which is not a WASI filetype (0 to 7)", t)
}

// signal wakes waiters; f.mu is held.
func (f *files) signal(i int) {
	close(f.changed)
	f.changed = make(chan struct{})
	if n := f.notify[i]; n != nil {
		n()
	}
}

// end records that the channel ended: waiters fail.
func (f *files) end(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		err = syscall.ECONNRESET
	}
	f.err = err
	close(f.changed)
	f.changed = make(chan struct{})
	for _, n := range f.notify {
		n()
	}
}

// take pops entry i's first stream, waiting if try is false.
func (f *files) take(ctx context.Context, i int, try bool, deadline <-chan time.Time) (pending, error) {
	for {
		f.mu.Lock()
		if err := f.bad[i]; err != nil {
			f.mu.Unlock()
			return pending{}, err
		}
		if q := f.queues[i]; len(q) > 0 {
			p := q[0]
			q[0] = pending{}
			f.queues[i] = q[1:]
			f.mu.Unlock()
			return p, nil
		}
		if f.closed[i] {
			f.mu.Unlock()
			return pending{}, syscall.EBADF
		}
		if f.err != nil {
			f.mu.Unlock()
			return pending{}, fmt.Errorf("the channel to the host ended: %w", f.err)
		}
		ch := f.changed
		f.mu.Unlock()
		if try {
			return pending{}, keep.ErrWouldBlock
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return pending{}, context.Cause(ctx)
		case <-deadline:
			return pending{}, fmt.Errorf("the host did not open the stream of this entry within %v", fileWait)
		}
	}
}

// Conn implements keep.Conns.
func (f *files) Conn(ctx context.Context, i int) (keep.Conn, keep.Filetype, error) {
	t := time.NewTimer(fileWait)
	defer t.Stop()
	p, err := f.take(ctx, i, false, t.C)
	if err != nil {
		return nil, 0, err
	}
	return p.s, p.ftype, nil
}

// DirStream implements keep.DirStreams: the stream on which the host
// serves dir entry i's host directory.
func (f *files) DirStream(ctx context.Context, i int) (io.ReadWriteCloser, error) {
	t := time.NewTimer(fileWait)
	defer t.Stop()
	p, err := f.take(ctx, i, false, t.C)
	if err != nil {
		return nil, err
	}
	return p.s, nil
}

// Acceptor implements keep.Conns.
func (f *files) Acceptor(i int) (keep.Acceptor, error) {
	return &acceptor{f: f, i: i}, nil
}

// acceptor is a listen entry's queue of connections.
type acceptor struct {
	f *files
	i int
}

func (a *acceptor) Accept() (keep.Conn, error) {
	p, err := a.f.take(context.Background(), a.i, false, nil)
	if err != nil {
		return nil, err
	}
	return p.s, nil
}

func (a *acceptor) TryAccept() (keep.Conn, error) {
	p, err := a.f.take(context.Background(), a.i, true, nil)
	if err != nil {
		return nil, err
	}
	return p.s, nil
}

func (a *acceptor) Pending() bool {
	a.f.mu.Lock()
	defer a.f.mu.Unlock()
	return len(a.f.queues[a.i]) > 0 || a.f.closed[a.i] || a.f.bad[a.i] != nil || a.f.err != nil
}

func (a *acceptor) SetNotify(n func()) {
	a.f.mu.Lock()
	defer a.f.mu.Unlock()
	if n == nil {
		delete(a.f.notify, a.i)
		return
	}
	a.f.notify[a.i] = n
	n()
}

// Close refuses further connections and resets the queued ones.
func (a *acceptor) Close() error {
	a.f.mu.Lock()
	q := a.f.queues[a.i]
	delete(a.f.queues, a.i)
	a.f.closed[a.i] = true
	a.f.signal(a.i)
	a.f.mu.Unlock()
	for _, p := range q {
		p.s.Reset("listener closed")
	}
	return nil
}

// closeAll closes the streams the Keep runtime never took (a run that
// failed before it built its fd table), so the host sees them end, and
// refuses any that arrive later.
func (f *files) closeAll() {
	f.mu.Lock()
	var q []pending
	for i, l := range f.queues {
		q = append(q, l...)
		f.closed[i] = true
	}
	f.queues = map[int][]pending{}
	f.mu.Unlock()
	for _, p := range q {
		p.s.Close()
	}
}
