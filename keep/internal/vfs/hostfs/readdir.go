package hostfs

import (
	"bytes"
	"encoding/binary"
	"math"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// readdirBuf is the getdents64 buffer size.
const readdirBuf = 32 << 10

// readdirState is a directory's listing position. The listing uses its
// own descriptor of the directory (opened on first use), whose offset
// only ReadDir moves. Cookies are the d_off values getdents64 returns:
// the kernel's own positions, stable across calls and valid for lseek.
type readdirState struct {
	mu       sync.Mutex
	fd       int // -1 until the first ReadDir
	buf      []byte
	off, end int    // unread entries in buf[off:end]
	pos      uint64 // the cookie of buf[off:], when valid
	valid    bool
}

func (r *readdirState) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
	r.buf, r.valid = nil, false
}

// struct linux_dirent64: d_ino u64, d_off s64, d_reclen u16, d_type u8,
// d_name (NUL-terminated).
const direntHeader = 19

// ReadDir implements vfs.Dir. Entries a previous call read from the
// kernel but did not return are served from the buffer when the next
// call continues at their cookie; cookie 0 always starts afresh
// (rewinddir sees a changed directory).
func (d *dir) ReadDir(cookie uint64, max int) ([]vfs.Dirent, error) {
	dfd, err := d.h.get()
	if err != nil {
		return nil, err
	}
	defer d.h.put()
	if max <= 0 {
		return nil, nil
	}
	if cookie > math.MaxInt64 {
		return nil, syscall.EINVAL
	}
	r := &d.rd
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fd < 0 {
		rfd, err := openat2(dfd, ".", unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			return nil, err
		}
		r.fd, r.buf, r.valid = rfd, make([]byte, readdirBuf), false
	}
	if cookie == 0 || !r.valid || cookie != r.pos {
		r.valid = false
		if _, err := unix.Seek(r.fd, int64(cookie), unix.SEEK_SET); err != nil {
			return nil, err
		}
		r.off, r.end, r.pos, r.valid = 0, 0, cookie, true
	}
	var out []vfs.Dirent
	for len(out) < max {
		if r.off >= r.end {
			n, err := unix.Getdents(r.fd, r.buf)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				r.valid = false
				if len(out) > 0 {
					return out, nil
				}
				return nil, err
			}
			if n <= 0 {
				break
			}
			r.off, r.end = 0, n
		}
		b := r.buf[r.off:r.end]
		if len(b) < direntHeader {
			r.valid = false
			return nil, syscall.EIO
		}
		reclen := int(binary.NativeEndian.Uint16(b[16:]))
		if reclen < direntHeader || reclen > len(b) {
			r.valid = false
			return nil, syscall.EIO
		}
		name := b[direntHeader:reclen]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		e := vfs.Dirent{
			Next: binary.NativeEndian.Uint64(b[8:]),
			Ino:  binary.NativeEndian.Uint64(b[0:]),
			Name: string(name),
			Type: direntType(b[18]),
		}
		r.off += reclen
		r.pos = e.Next
		if b[18] == unix.DT_UNKNOWN {
			e.Type = r.typeOf(e.Name)
		}
		out = append(out, e)
	}
	return out, nil
}

// typeOf finds an entry's type when the file system does not say
// (DT_UNKNOWN). name is one component; ".." is not looked at (at the
// preopen it is outside).
func (r *readdirState) typeOf(name string) fd.Filetype {
	if isDot(name) {
		return fd.FiletypeDirectory
	}
	var st unix.Stat_t
	if err := fstatat(r.fd, name, &st); err != nil {
		return fd.FiletypeUnknown
	}
	return filetype(st.Mode)
}

func direntType(t uint8) fd.Filetype {
	switch t {
	case unix.DT_REG:
		return fd.FiletypeRegularFile
	case unix.DT_DIR:
		return fd.FiletypeDirectory
	case unix.DT_LNK:
		return fd.FiletypeSymbolicLink
	case unix.DT_CHR:
		return fd.FiletypeCharacterDevice
	case unix.DT_BLK:
		return fd.FiletypeBlockDevice
	case unix.DT_SOCK:
		return fd.FiletypeSocketStream
	}
	return fd.FiletypeUnknown
}
