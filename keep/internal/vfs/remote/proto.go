// Package remote carries a preopened directory (vfs.Dir) over a byte
// stream: the microVM Keep, whose guest has no host file system, reaches
// the host directory of a [[files]] entry of kind "dir" (source "host", or
// the ciphertext store of a "sealed" one) over a stream of its channel to
// the host. Serve runs on the host, on the directory's own source
// (keep/internal/vfs/hostfs on the host's directory descriptor); Dial runs
// in the Keep and returns a vfs.Dir whose every call is one request and one
// reply on the stream.
//
// What it trusts: nothing, on either side. The Keep treats every reply as
// hostile (a host may send anything): each reply is decoded by a strict
// parser with every length bounded by what was asked (a read returns at
// most the bytes requested, a listing at most the entries requested, names
// are valid path components, file types known ones), and a reply that
// breaks the protocol ends the connection (every later call fails with
// EIO). The host treats every request as hostile too: it serves only the
// directory it was given, through a source that resolves every path
// beneath it (hostfs: openat2 RESOLVE_BENEATH), bounds the objects a Keep
// may hold open and the bytes it may ask for, and ends the connection on a
// malformed request.
//
// Wire format: each message is a 4-byte big-endian length and a body of at
// most maxBody bytes. A request body is an op byte, a 4-byte handle (0 is
// the served directory; Open returns new ones) and the op's arguments; a
// reply body is a 4-byte status (0, a Linux errno, or one of the codes
// below) and, with status 0, the op's results. Integers are big-endian;
// strings and byte slices are a 4-byte length and the bytes. A request has
// exactly one reply, in order.
package remote

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"syscall"

	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// Ops.
const (
	opRoot byte = iota + 1 // → filetype u8, rights u64 of the served directory
	opOpen                 // path, flags u16 → handle u32, filetype u8, rights u64
	opClose
	opStat   // → stat
	opStatAt // path, follow → stat
	opSetTimes
	opSetTimesAt // path, follow, times
	opMkdir      // path
	opRmdir      // path
	opUnlink     // path
	opRename     // old, newHandle u32, new
	opLink       // old, follow, newHandle u32, new
	opSymlink    // target, path
	opReadlink   // path → string
	opReadDir    // cookie u64, max u32 → n u32, n × (next u64, ino u64, type u8, name)
	opSync
	opRead      // n u32 → eof u8, bytes
	opWrite     // bytes → n u32
	opReadAt    // off i64, n u32 → eof u8, bytes
	opWriteAt   // off i64, bytes → n u32
	opSeek      // off i64, whence u8 → pos i64
	opTruncate  // size i64
	opAllocate  // off i64, n i64
	opSetAppend // on u8
	opDatasync
	opLast = opDatasync
)

// Limits.
const (
	// maxData bounds the bytes of one read or write (larger ones are
	// split by the Keep).
	maxData = 1 << 20
	// maxBody bounds a message body: maxData and a few fields.
	maxBody = maxData + 64
	// maxEntries bounds the entries one ReadDir reply holds.
	maxEntries = 1024
	// maxHandles bounds the objects a Keep may hold open on one stream.
	maxHandles = 4096
	// maxReadlink bounds a symlink target.
	maxReadlink = vfs.MaxPath
)

// Statuses beyond Linux errnos (which are below 4096).
const (
	statusOK         = 0
	maxErrno         = 4095
	statusNotCapable = 0x10001 // vfs.ErrNotCapable
	statusIntegrity  = 0x10002 // an error wrapping vfs.ErrIntegrity
)

// Open flags (vfs.OpenOptions).
const (
	oFollow uint16 = 1 << iota
	oCreate
	oExcl
	oTrunc
	oDirectory
	oRead
	oWrite
	oAppend
	oSync
	oDsync
	oAll = oDsync<<1 - 1
)

func openFlags(o vfs.OpenOptions) uint16 {
	var f uint16
	for _, b := range []struct {
		on  bool
		bit uint16
	}{{o.Follow, oFollow}, {o.Create, oCreate}, {o.Excl, oExcl}, {o.Trunc, oTrunc}, {o.Directory, oDirectory},
		{o.Read, oRead}, {o.Write, oWrite}, {o.Append, oAppend}, {o.Sync, oSync}, {o.Dsync, oDsync}} {
		if b.on {
			f |= b.bit
		}
	}
	return f
}

func openOptions(f uint16) vfs.OpenOptions {
	return vfs.OpenOptions{Follow: f&oFollow != 0, Create: f&oCreate != 0, Excl: f&oExcl != 0, Trunc: f&oTrunc != 0,
		Directory: f&oDirectory != 0, Read: f&oRead != 0, Write: f&oWrite != 0, Append: f&oAppend != 0,
		Sync: f&oSync != 0, Dsync: f&oDsync != 0}
}

// errProtocol is a message that breaks the protocol.
var errProtocol = errors.New("remote directory: protocol violation")

func protoErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errProtocol, fmt.Sprintf(format, a...))
}

// enc builds a message body.
type enc struct{ b []byte }

func (e *enc) u8(v byte)      { e.b = append(e.b, v) }
func (e *enc) u16(v uint16)   { e.b = binary.BigEndian.AppendUint16(e.b, v) }
func (e *enc) u32(v uint32)   { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *enc) u64(v uint64)   { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *enc) i64(v int64)    { e.u64(uint64(v)) }
func (e *enc) bytes(p []byte) { e.u32(uint32(len(p))); e.b = append(e.b, p...) }
func (e *enc) str(s string)   { e.u32(uint32(len(s))); e.b = append(e.b, s...) }
func (e *enc) bool(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}

func (e *enc) stat(s vfs.Stat) {
	e.u64(s.Dev)
	e.u64(s.Ino)
	e.u8(byte(s.Type))
	e.u64(s.Nlink)
	e.u64(s.Size)
	e.i64(s.Atim)
	e.i64(s.Mtim)
	e.i64(s.Ctim)
}

func (e *enc) times(t vfs.Times) {
	e.i64(t.Atim)
	e.i64(t.Mtim)
	var f byte
	for i, on := range []bool{t.SetAtim, t.AtimNow, t.SetMtim, t.MtimNow} {
		if on {
			f |= 1 << i
		}
	}
	e.u8(f)
}

// dec reads a message body; the first error sticks, and every read after
// it returns zero values.
type dec struct {
	b   []byte
	err error
}

func (d *dec) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.err = protoErr("message ends early")
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *dec) u8() byte {
	if p := d.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (d *dec) u16() uint16 {
	if p := d.take(2); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (d *dec) u32() uint32 {
	if p := d.take(4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (d *dec) u64() uint64 {
	if p := d.take(8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

func (d *dec) i64() int64 { return int64(d.u64()) }

func (d *dec) bool() bool {
	switch v := d.u8(); v {
	case 0:
		return false
	case 1:
		return true
	default:
		if d.err == nil {
			d.err = protoErr("boolean %d", v)
		}
		return false
	}
}

// bytes reads a byte slice of at most max bytes (aliasing the message).
func (d *dec) bytes(max int) []byte {
	n := d.u32()
	if d.err == nil && uint64(n) > uint64(max) {
		d.err = protoErr("%d bytes where at most %d belong", n, max)
	}
	return d.take(int(n))
}

// str reads a string of at most max bytes.
func (d *dec) str(max int) string { return string(d.bytes(max)) }

// path reads a path argument: at most vfs.MaxPath bytes without NUL (the
// WASI layer's rule for what reaches a vfs.Dir).
func (d *dec) path() string {
	s := d.str(vfs.MaxPath)
	for i := 0; i < len(s); i++ {
		if s[i] == 0 && d.err == nil {
			d.err = protoErr("NUL in a path")
		}
	}
	return s
}

func (d *dec) filetype() fd.Filetype {
	t := fd.Filetype(d.u8())
	if t > fd.FiletypeSymbolicLink && d.err == nil {
		d.err = protoErr("file type %d", t)
	}
	return t
}

func (d *dec) stat() vfs.Stat {
	return vfs.Stat{Dev: d.u64(), Ino: d.u64(), Type: d.filetype(), Nlink: d.u64(), Size: d.u64(),
		Atim: d.i64(), Mtim: d.i64(), Ctim: d.i64()}
}

func (d *dec) times() vfs.Times {
	t := vfs.Times{Atim: d.i64(), Mtim: d.i64()}
	f := d.u8()
	if f > 0xf && d.err == nil {
		d.err = protoErr("times flags %#x", f)
	}
	t.SetAtim, t.AtimNow, t.SetMtim, t.MtimNow = f&1 != 0, f&2 != 0, f&4 != 0, f&8 != 0
	if (t.SetAtim && t.AtimNow || t.SetMtim && t.MtimNow) && d.err == nil {
		d.err = protoErr("times flags %#x set a time twice", f)
	}
	return t
}

// end requires the body to be used up.
func (d *dec) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = protoErr("%d bytes after the message", len(d.b))
	}
	return d.err
}

// writeMsg writes one message.
func writeMsg(w io.Writer, body []byte) error {
	if len(body) > maxBody {
		return fmt.Errorf("remote directory: message of %d bytes exceeds %d", len(body), maxBody)
	}
	msg := make([]byte, 4, 4+len(body))
	binary.BigEndian.PutUint32(msg, uint32(len(body)))
	_, err := w.Write(append(msg, body...))
	return err
}

// readMsg reads one message into buf (grown as needed, never beyond
// maxBody).
func readMsg(r io.Reader, buf []byte) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxBody {
		return nil, protoErr("message of %d bytes exceeds %d", n, maxBody)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// status is the reply status of err.
func status(err error) uint32 {
	var e syscall.Errno
	switch {
	case err == nil:
		return statusOK
	case errors.Is(err, vfs.ErrNotCapable):
		return statusNotCapable
	case errors.Is(err, vfs.ErrIntegrity):
		return statusIntegrity
	case errors.As(err, &e) && e > 0 && e <= maxErrno:
		return uint32(e)
	}
	return uint32(syscall.EIO)
}

// statusErr is the error of a reply status.
func statusErr(s uint32) (error, bool) {
	switch {
	case s == statusOK:
		return nil, true
	case s <= maxErrno:
		return syscall.Errno(s), true
	case s == statusNotCapable:
		return vfs.ErrNotCapable, true
	case s == statusIntegrity:
		return fmt.Errorf("%w (reported by the host)", vfs.ErrIntegrity), true
	}
	return nil, false
}

// clampLen bounds a length from the Keep to what one message carries.
func clampLen(n int) int { return min(n, maxData, math.MaxInt32) }
