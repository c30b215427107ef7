package remote

import (
	"errors"
	"fmt"
	"io"
	"syscall"

	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// Serve answers the requests on rw with root, until rw ends (nil) or a
// request breaks the protocol (an error wrapping errProtocol); it closes
// every object the peer opened before it returns, but not root. It is the
// host side: root is the source of the directory (hostfs on the host's
// descriptor), which resolves every path beneath it.
func Serve(rw io.ReadWriter, root vfs.Dir) error {
	s := &server{objs: map[uint32]fd.File{0: root}, next: 1}
	defer s.closeAll()
	var buf []byte
	for {
		req, err := readMsg(rw, buf)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("remote directory: reading a request: %w", err)
		}
		buf = req
		reply, err := s.handle(req)
		if err != nil {
			return err
		}
		if err := writeMsg(rw, reply); err != nil {
			return fmt.Errorf("remote directory: writing a reply: %w", err)
		}
	}
}

type server struct {
	objs map[uint32]fd.File
	next uint32
	// buf is reused for read replies.
	buf []byte
}

func (s *server) closeAll() {
	for h, o := range s.objs {
		if h != 0 {
			o.Close()
		}
	}
}

func (s *server) dir(h uint32) (vfs.Dir, error) {
	o, ok := s.objs[h]
	if !ok {
		return nil, syscall.EBADF
	}
	d, ok := o.(vfs.Dir)
	if !ok {
		return nil, syscall.ENOTDIR
	}
	return d, nil
}

func (s *server) file(h uint32) (vfs.File, error) {
	o, ok := s.objs[h]
	if !ok {
		return nil, syscall.EBADF
	}
	f, ok := o.(vfs.File)
	if !ok {
		return nil, syscall.EISDIR
	}
	return f, nil
}

// handle decodes and carries out one request. It returns an error only
// for a request that breaks the protocol; what the source refuses is the
// reply's status.
func (s *server) handle(req []byte) ([]byte, error) {
	d := &dec{b: req}
	op, h := d.u8(), d.u32()
	if d.err == nil && (op == 0 || op > opLast) {
		return nil, protoErr("unknown op %d", op)
	}
	var out enc
	var err error
	// args is checked before the op runs: a malformed request changes
	// nothing.
	args := func() bool { return d.end() == nil }
	switch op {
	case opRoot:
		if !args() {
			break
		}
		root := s.objs[0]
		out.u8(byte(root.Filetype()))
		out.u64(root.Rights())
	case opOpen:
		path, flags := d.path(), d.u16()
		if flags&^oAll != 0 && d.err == nil {
			d.err = protoErr("open flags %#x", flags)
		}
		if !args() {
			break
		}
		var dir vfs.Dir
		if dir, err = s.dir(h); err != nil {
			break
		}
		if len(s.objs) >= maxHandles {
			err = syscall.EMFILE
			break
		}
		var f fd.File
		if f, err = dir.Open(path, openOptions(flags)); err != nil {
			break
		}
		for s.objs[s.next] != nil || s.next == 0 {
			s.next++
		}
		nh := s.next
		s.next++
		s.objs[nh] = f
		_, isDir := f.(vfs.Dir)
		if _, isFile := f.(vfs.File); !isDir && !isFile {
			f.Close()
			delete(s.objs, nh)
			err = syscall.ENOTSUP
			break
		}
		out.u32(nh)
		out.u8(byte(f.Filetype()))
		out.u64(f.Rights())
	case opClose:
		if !args() {
			break
		}
		o, ok := s.objs[h]
		switch {
		case !ok:
			err = syscall.EBADF
		case h == 0:
			err = syscall.EBADF // the served directory stays open
		default:
			delete(s.objs, h)
			err = o.Close()
		}
	case opStat:
		if !args() {
			break
		}
		var st vfs.Stat
		switch o := s.objs[h].(type) {
		case vfs.Dir:
			st, err = o.Stat()
		case vfs.File:
			st, err = o.Stat()
		default:
			err = syscall.EBADF
		}
		if err == nil {
			out.stat(st)
		}
	case opStatAt:
		path, follow := d.path(), d.bool()
		if !args() {
			break
		}
		err = s.onDir(h, func(dir vfs.Dir) error {
			st, err := dir.StatAt(path, follow)
			if err == nil {
				out.stat(st)
			}
			return err
		})
	case opSetTimes:
		t := d.times()
		if !args() {
			break
		}
		switch o := s.objs[h].(type) {
		case vfs.Dir:
			err = o.SetTimes(t)
		case vfs.File:
			err = o.SetTimes(t)
		default:
			err = syscall.EBADF
		}
	case opSetTimesAt:
		path, follow, t := d.path(), d.bool(), d.times()
		if args() {
			err = s.onDir(h, func(dir vfs.Dir) error { return dir.SetTimesAt(path, follow, t) })
		}
	case opMkdir, opRmdir, opUnlink, opReadlink:
		path := d.path()
		if !args() {
			break
		}
		err = s.onDir(h, func(dir vfs.Dir) error {
			switch op {
			case opMkdir:
				return dir.Mkdir(path)
			case opRmdir:
				return dir.Rmdir(path)
			case opUnlink:
				return dir.Unlink(path)
			}
			target, err := dir.Readlink(path)
			if err == nil {
				if len(target) > maxReadlink {
					return syscall.ENAMETOOLONG
				}
				out.str(target)
			}
			return err
		})
	case opRename, opLink:
		oldPath := d.path()
		follow := false
		if op == opLink {
			follow = d.bool()
		}
		nh, newPath := d.u32(), d.path()
		if !args() {
			break
		}
		var dir, ndir vfs.Dir
		if dir, err = s.dir(h); err != nil {
			break
		}
		if ndir, err = s.dir(nh); err != nil {
			break
		}
		if op == opRename {
			err = dir.Rename(oldPath, ndir, newPath)
		} else {
			err = dir.Link(oldPath, follow, ndir, newPath)
		}
	case opSymlink:
		target, path := d.path(), d.path()
		if args() {
			err = s.onDir(h, func(dir vfs.Dir) error { return dir.Symlink(target, path) })
		}
	case opReadDir:
		cookie, max := d.u64(), d.u32()
		if !args() {
			break
		}
		err = s.onDir(h, func(dir vfs.Dir) error {
			ents, err := dir.ReadDir(cookie, int(min(max, maxEntries)))
			if err != nil {
				return err
			}
			ents = ents[:min(len(ents), int(min(max, maxEntries)))]
			var body enc
			n := 0
			for _, e := range ents {
				var one enc
				one.u64(e.Next)
				one.u64(e.Ino)
				one.u8(byte(e.Type))
				one.str(e.Name)
				if len(body.b)+len(one.b) > maxData {
					break // the Keep asks again from the last cookie
				}
				body.b = append(body.b, one.b...)
				n++
			}
			out.u32(uint32(n))
			out.b = append(out.b, body.b...)
			return nil
		})
	case opSync:
		if !args() {
			break
		}
		switch o := s.objs[h].(type) {
		case vfs.Dir:
			err = o.Sync()
		case vfs.File:
			err = o.Sync()
		default:
			err = syscall.EBADF
		}
	case opRead, opReadAt:
		var off int64
		if op == opReadAt {
			off = d.i64()
		}
		n := d.u32()
		if !args() {
			break
		}
		err = s.onFile(h, func(f vfs.File) error {
			if cap(s.buf) < maxData {
				s.buf = make([]byte, maxData)
			}
			p := s.buf[:min(int(n), maxData)]
			var m int
			var err error
			if op == opRead {
				m, err = f.Read(p, false)
			} else {
				m, err = f.ReadAt(p, off)
			}
			eof := errors.Is(err, io.EOF)
			if err != nil && !eof {
				return err
			}
			out.bool(eof)
			out.bytes(p[:m])
			return nil
		})
	case opWrite, opWriteAt:
		var off int64
		if op == opWriteAt {
			off = d.i64()
		}
		p := d.bytes(maxData)
		if !args() {
			break
		}
		err = s.onFile(h, func(f vfs.File) error {
			var m int
			var err error
			if op == opWrite {
				m, err = f.Write(p, false)
			} else {
				m, err = f.WriteAt(p, off)
			}
			if err == nil {
				out.u32(uint32(m))
			}
			return err
		})
	case opSeek:
		off, whence := d.i64(), d.u8()
		if whence > 2 && d.err == nil {
			d.err = protoErr("whence %d", whence)
		}
		if args() {
			err = s.onFile(h, func(f vfs.File) error {
				pos, err := f.Seek(off, int(whence))
				if err == nil {
					out.i64(pos)
				}
				return err
			})
		}
	case opTruncate:
		size := d.i64()
		if args() {
			err = s.onFile(h, func(f vfs.File) error { return f.Truncate(size) })
		}
	case opAllocate:
		off, n := d.i64(), d.i64()
		if args() {
			err = s.onFile(h, func(f vfs.File) error { return f.Allocate(off, n) })
		}
	case opSetAppend:
		on := d.bool()
		if args() {
			err = s.onFile(h, func(f vfs.File) error { return f.SetAppend(on) })
		}
	case opDatasync:
		if args() {
			err = s.onFile(h, func(f vfs.File) error { return f.Datasync() })
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	var reply enc
	reply.u32(status(err))
	if err == nil {
		reply.b = append(reply.b, out.b...)
	}
	return reply.b, nil
}

func (s *server) onDir(h uint32, do func(vfs.Dir) error) error {
	d, err := s.dir(h)
	if err != nil {
		return err
	}
	return do(d)
}

func (s *server) onFile(h uint32, do func(vfs.File) error) error {
	f, err := s.file(h)
	if err != nil {
		return err
	}
	return do(f)
}
