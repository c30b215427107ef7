package remote

import (
	"fmt"
	"io"
	"sync"
	"syscall"

	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// Dial returns the directory served (Serve) at the other end of rw, in
// the Keep. A read-only directory refuses every change itself, before
// asking the host (the host's word on what it allows is not needed). The
// directory and every object opened from it share rw, which is closed
// when the last of them is: as with a host directory, closing the
// directory (a workload closing its preopen) leaves the files and
// directories opened beneath it working.
func Dial(rw io.ReadWriteCloser, readOnly bool) (vfs.Dir, error) {
	c := &conn{rw: rw, readOnly: readOnly, refs: 1}
	var rights uint64
	err := c.withReply(opRoot, 0, nil, func(d *dec) error {
		t := d.filetype()
		rights = d.u64()
		if err := d.end(); err != nil {
			return err
		}
		if t != fd.FiletypeDirectory {
			return protoErr("the served directory is of type %d", t)
		}
		return nil
	})
	if err != nil {
		c.close()
		return nil, fmt.Errorf("remote directory: %w", err)
	}
	return &dir{obj: obj{c: c, h: 0, rights: rights}, root: true}, nil
}

// conn is the Keep's end of the stream: one request at a time.
type conn struct {
	mu       sync.Mutex
	rw       io.ReadWriteCloser
	readOnly bool
	// broken is the protocol violation or stream error that ended the
	// connection; every call after it fails with EIO.
	broken error
	buf    []byte
	// refs counts the open objects (the served directory included); the
	// last one's close closes the stream.
	refs int
}

// hold counts a newly opened object.
func (c *conn) hold() {
	c.mu.Lock()
	c.refs++
	c.mu.Unlock()
}

// release drops a closed object's count, closing the stream after the last.
func (c *conn) release() {
	c.mu.Lock()
	c.refs--
	last := c.refs == 0
	c.mu.Unlock()
	if last {
		c.close()
	}
}

func (c *conn) fail(err error) {
	if c.broken == nil {
		c.broken = err
		c.rw.Close()
	}
}

func (c *conn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken == nil {
		c.broken = syscall.EBADF
		c.rw.Close()
	}
}

// withReply sends a request (op, handle h, the encoded arguments args)
// and decodes the reply's results with use, under the lock (the reply
// aliases the connection's buffer). A reply whose status is an error
// returns that error. A reply that breaks the protocol (use's error: a
// result out of bounds) ends the connection and is EIO, as is every call
// after it.
func (c *conn) withReply(op byte, h uint32, args []byte, use func(*dec) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		if c.broken == syscall.EBADF {
			return syscall.EBADF
		}
		return syscall.EIO
	}
	var e enc
	e.u8(op)
	e.u32(h)
	e.b = append(e.b, args...)
	if err := writeMsg(c.rw, e.b); err != nil {
		c.fail(err)
		return syscall.EIO
	}
	reply, err := readMsg(c.rw, c.buf)
	if err != nil {
		c.fail(err)
		return syscall.EIO
	}
	c.buf = reply
	d := &dec{b: reply}
	st := d.u32()
	serr, ok := statusErr(st)
	if d.err == nil && !ok {
		d.err = protoErr("status %#x", st)
	}
	if d.err == nil && serr != nil {
		d.err = d.end() // an error reply carries nothing more
		if d.err == nil {
			return serr
		}
	}
	if d.err == nil {
		d.err = use(d)
	}
	if d.err != nil {
		c.fail(d.err)
		return syscall.EIO
	}
	return nil
}

// simple is a call whose reply carries no results.
func (c *conn) simple(op byte, h uint32, args []byte) error {
	return c.withReply(op, h, args, func(d *dec) error { return d.end() })
}

// obj is an object open on the host: the served directory (handle 0) or
// one opened beneath it.
type obj struct {
	c      *conn
	h      uint32
	rights uint64
	once   sync.Once
}

func (o *obj) Rights() uint64 { return o.rights }

func (o *obj) stat() (vfs.Stat, error) {
	var st vfs.Stat
	err := o.c.withReply(opStat, o.h, nil, func(d *dec) error { st = d.stat(); return d.end() })
	return st, err
}

func (o *obj) setTimes(t vfs.Times) error {
	if o.c.readOnly {
		return syscall.EROFS
	}
	var e enc
	e.times(t)
	return o.c.simple(opSetTimes, o.h, e.b)
}

func (o *obj) sync() error { return o.c.simple(opSync, o.h, nil) }

func (o *obj) closeObj() error {
	var err error = syscall.EBADF
	o.once.Do(func() {
		err = o.c.simple(opClose, o.h, nil)
		o.c.release()
	})
	return err
}

// dir is a directory on the host.
type dir struct {
	obj
	root bool
}

var _ vfs.Dir = (*dir)(nil)

func (d *dir) Filetype() fd.Filetype { return fd.FiletypeDirectory }

func (d *dir) Close() error {
	if d.root {
		// Handle 0 stays open on the host while objects beneath it are:
		// the host closes it when the stream ends.
		err := error(syscall.EBADF)
		d.once.Do(func() {
			err = nil
			d.c.release()
		})
		return err
	}
	return d.closeObj()
}

func (d *dir) Stat() (vfs.Stat, error)    { return d.stat() }
func (d *dir) SetTimes(t vfs.Times) error { return d.setTimes(t) }
func (d *dir) Sync() error                { return d.sync() }

func (d *dir) Open(path string, o vfs.OpenOptions) (fd.File, error) {
	change := o.Create || o.Trunc || o.Write || o.Append
	var e enc
	e.str(path)
	e.u16(openFlags(o))
	var h uint32
	var t fd.Filetype
	var rights uint64
	err := d.c.withReply(opOpen, d.h, e.b, func(r *dec) error {
		h, t, rights = r.u32(), r.filetype(), r.u64()
		if err := r.end(); err != nil {
			return err
		}
		if h == 0 {
			return protoErr("open returned the served directory's handle")
		}
		if o.Directory && t != fd.FiletypeDirectory {
			return protoErr("O_DIRECTORY open returned type %d", t)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if d.c.readOnly && change {
		// The host opened for a change what is read-only (see ro).
		d.c.simple(opClose, h, nil)
		return nil, syscall.EROFS
	}
	d.c.hold()
	if t == fd.FiletypeDirectory {
		return &dir{obj: obj{c: d.c, h: h, rights: rights}}, nil
	}
	return &file{obj: obj{c: d.c, h: h, rights: rights}, typ: t}, nil
}

func (d *dir) pathOp(op byte, path string) error {
	var e enc
	e.str(path)
	return d.c.simple(op, d.h, e.b)
}

func (d *dir) StatAt(path string, follow bool) (vfs.Stat, error) {
	var e enc
	e.str(path)
	e.bool(follow)
	var st vfs.Stat
	err := d.c.withReply(opStatAt, d.h, e.b, func(r *dec) error { st = r.stat(); return r.end() })
	return st, err
}

func (d *dir) SetTimesAt(path string, follow bool, t vfs.Times) error {
	var e enc
	e.str(path)
	e.bool(follow)
	e.times(t)
	return d.ro(d.c.simple(opSetTimesAt, d.h, e.b))
}

// ro is the outcome of a change beneath a directory: on a read-only one
// it is never success. The change is asked of the host all the same, so
// that a path that does not resolve fails as the source says (ENOENT,
// ENOTCAPABLE, … before EROFS, as hostfs orders them); a host that says
// it made the change gets EROFS told to the workload (what the host does
// to its own directory is its own affair).
func (d *dir) ro(err error) error {
	if err == nil && d.c.readOnly {
		return syscall.EROFS
	}
	return err
}

func (d *dir) Mkdir(path string) error { return d.ro(d.pathOp(opMkdir, path)) }

func (d *dir) Rmdir(path string) error { return d.ro(d.pathOp(opRmdir, path)) }

func (d *dir) Unlink(path string) error { return d.ro(d.pathOp(opUnlink, path)) }

// peer is newDir as a directory of this connection (EXDEV otherwise).
func (d *dir) peer(newDir vfs.Dir) (*dir, error) {
	if p, ok := newDir.(*vfs.Preopen); ok {
		newDir = p.Dir
	}
	nd, ok := newDir.(*dir)
	if !ok || nd.c != d.c {
		return nil, syscall.EXDEV
	}
	return nd, nil
}

func (d *dir) Rename(oldPath string, newDir vfs.Dir, newPath string) error {
	nd, err := d.peer(newDir)
	if err != nil {
		return err
	}
	var e enc
	e.str(oldPath)
	e.u32(nd.h)
	e.str(newPath)
	return d.ro(d.c.simple(opRename, d.h, e.b))
}

func (d *dir) Link(oldPath string, follow bool, newDir vfs.Dir, newPath string) error {
	nd, err := d.peer(newDir)
	if err != nil {
		return err
	}
	var e enc
	e.str(oldPath)
	e.bool(follow)
	e.u32(nd.h)
	e.str(newPath)
	return d.ro(d.c.simple(opLink, d.h, e.b))
}

func (d *dir) Symlink(target, path string) error {
	var e enc
	e.str(target)
	e.str(path)
	return d.ro(d.c.simple(opSymlink, d.h, e.b))
}

func (d *dir) Readlink(path string) (string, error) {
	var e enc
	e.str(path)
	var target string
	err := d.c.withReply(opReadlink, d.h, e.b, func(r *dec) error { target = r.str(maxReadlink); return r.end() })
	return target, err
}

func (d *dir) ReadDir(cookie uint64, max int) ([]vfs.Dirent, error) {
	if max <= 0 {
		return nil, nil
	}
	max = min(max, maxEntries)
	var e enc
	e.u64(cookie)
	e.u32(uint32(max))
	var ents []vfs.Dirent
	err := d.c.withReply(opReadDir, d.h, e.b, func(r *dec) error {
		n := r.u32()
		if r.err == nil && n > uint32(max) {
			return protoErr("%d entries where at most %d were asked for", n, max)
		}
		ents = make([]vfs.Dirent, 0, n)
		for range n {
			ent := vfs.Dirent{Next: r.u64(), Ino: r.u64(), Type: r.filetype(), Name: r.str(vfs.MaxName)}
			if r.err != nil {
				return r.err
			}
			if ent.Name != "." && ent.Name != ".." && vfs.ValidName(ent.Name) != nil {
				return protoErr("entry name %q", ent.Name)
			}
			ents = append(ents, ent)
		}
		return r.end()
	})
	if err != nil {
		return nil, err
	}
	return ents, nil
}

// file is a file on the host. Like every vfs.File it is always ready.
type file struct {
	obj
	typ fd.Filetype
}

var _ vfs.File = (*file)(nil)

func (f *file) Filetype() fd.Filetype              { return f.typ }
func (f *file) Close() error                       { return f.closeObj() }
func (f *file) PollFD(bool) (int, bool)            { return -1, true }
func (f *file) Stat() (vfs.Stat, error)            { return f.stat() }
func (f *file) SetTimes(t vfs.Times) error         { return f.setTimes(t) }
func (f *file) Sync() error                        { return f.sync() }
func (f *file) Datasync() error                    { return f.c.simple(opDatasync, f.h, nil) }
func (f *file) Read(p []byte, _ bool) (int, error) { return f.read(opRead, p, 0) }

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		m, err := f.read(opReadAt, p[n:], off+int64(n))
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// read is one read of at most maxData bytes; a reply of more bytes than
// asked for breaks the protocol. At end of file it returns io.EOF (with
// what it read).
func (f *file) read(op byte, p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	want := clampLen(len(p))
	var e enc
	if op == opReadAt {
		e.i64(off)
	}
	e.u32(uint32(want))
	var n int
	var eof bool
	err := f.c.withReply(op, f.h, e.b, func(r *dec) error {
		eof = r.bool()
		data := r.bytes(want)
		if err := r.end(); err != nil {
			return err
		}
		if len(data) == 0 && !eof {
			return protoErr("an empty read that is not the end of the file")
		}
		n = copy(p, data)
		return nil
	})
	if err != nil {
		return 0, err
	}
	if eof {
		return n, io.EOF
	}
	return n, nil
}

func (f *file) Write(p []byte, _ bool) (int, error) { return f.write(opWrite, p, 0) }

func (f *file) WriteAt(p []byte, off int64) (int, error) { return f.write(opWriteAt, p, off) }

// write writes p in pieces of at most maxData bytes; a reply that claims
// more than the piece breaks the protocol, a short one ends the write.
func (f *file) write(op byte, p []byte, off int64) (int, error) {
	if f.c.readOnly {
		return 0, syscall.EROFS
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := 0
	for n < len(p) {
		piece := p[n : n+clampLen(len(p)-n)]
		var e enc
		if op == opWriteAt {
			e.i64(off + int64(n))
		}
		e.bytes(piece)
		var m int
		err := f.c.withReply(op, f.h, e.b, func(r *dec) error {
			w := r.u32()
			if err := r.end(); err != nil {
				return err
			}
			if w > uint32(len(piece)) {
				return protoErr("wrote %d of %d bytes", w, len(piece))
			}
			m = int(w)
			return nil
		})
		n += m
		if err != nil {
			return n, err
		}
		if m < len(piece) {
			return n, io.ErrShortWrite
		}
	}
	return n, nil
}

func (f *file) Seek(off int64, whence int) (int64, error) {
	if whence < 0 || whence > 2 {
		return 0, syscall.EINVAL
	}
	var e enc
	e.i64(off)
	e.u8(byte(whence))
	var pos int64
	err := f.c.withReply(opSeek, f.h, e.b, func(r *dec) error {
		pos = r.i64()
		if err := r.end(); err != nil {
			return err
		}
		if pos < 0 {
			return protoErr("seek to %d", pos)
		}
		return nil
	})
	return pos, err
}

func (f *file) Truncate(size int64) error {
	if f.c.readOnly {
		return syscall.EROFS
	}
	var e enc
	e.i64(size)
	return f.c.simple(opTruncate, f.h, e.b)
}

func (f *file) Allocate(off, n int64) error {
	if f.c.readOnly {
		return syscall.EROFS
	}
	var e enc
	e.i64(off)
	e.i64(n)
	return f.c.simple(opAllocate, f.h, e.b)
}

func (f *file) SetAppend(on bool) error {
	var e enc
	e.bool(on)
	return f.c.simple(opSetAppend, f.h, e.b)
}
