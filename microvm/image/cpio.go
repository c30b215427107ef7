package image

// The newc ("070701", SVR4 without CRC) cpio format, as the Linux kernel's
// initramfs unpacker (init/initramfs.c) reads it, written by hand.
//
// Why not a library: the initrd's SHA-256 is part of the SEV-SNP launch
// measurement, so the archive must be byte-identical for identical inputs, and
// the two Go cpio libraries do not give that with a small footprint:
// github.com/cavaliergopher/cpio v1.0.1 writes rdevmajor/rdevminor as zero
// (no /dev/console 5:1 node is possible) and, once a header with a checksum
// is written, switches its shared magic to "070702" for every later archive;
// github.com/u-root/u-root/pkg/cpio is reproducible only after per-record
// normalisation (MakeReproducible) and is not a module of its own: using it
// adds the whole u-root module (some fifty requirements) to go.mod. The format
// is 13 fixed-width hex fields and two paddings; owning those ~200 lines keeps
// every byte of the measured archive decided here and covered by the golden
// hash test.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// File type bits of Entry.Mode (the st_mode values the kernel expects).
const (
	ModeDir     = 0o040000
	ModeRegular = 0o100000
	ModeChar    = 0o020000
	ModeSymlink = 0o120000
	modeType    = 0o170000
	modePerm    = 0o7777
)

const (
	newcMagic      = "070701"
	newcHeaderSize = 110
	trailerName    = "TRAILER!!!"
	// maxNameSize bounds a name in bytes including its NUL (the kernel's
	// PATH_MAX).
	maxNameSize = 4096
)

// Entry is one file of an archive. Name is a clean relative path ("init",
// "dev/console"); Mode holds the file type bits and permissions; Data is a
// regular file's contents or a symlink's target; RdevMajor and RdevMinor
// name a character device.
type Entry struct {
	Name      string
	Mode      uint32
	Data      []byte
	RdevMajor uint32
	RdevMinor uint32
}

// Record is an Entry as read back from an archive, with the header fields the
// writer fixes for reproducibility.
type Record struct {
	Entry
	Ino      uint32
	UID      uint32
	GID      uint32
	NLink    uint32
	MTime    uint32
	DevMajor uint32
	DevMinor uint32
}

// WriteArchive writes entries as a newc archive followed by the trailer.
// The output depends only on the entries, not on their order in the slice or
// on the clock: entries are sorted by name (a directory therefore precedes
// its contents), inode numbers count from 1 in that order, owners, times and
// device numbers of the archive itself are zero. Every directory an entry
// lives in must be an entry too; names must be unique.
func WriteArchive(w io.Writer, entries []Entry) error {
	sorted := make([]Entry, len(entries))
	copy(sorted, entries)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	if err := checkEntries(sorted); err != nil {
		return err
	}
	bw := &errWriter{w: w}
	for i, e := range sorted {
		nlink := uint32(1)
		if e.Mode&modeType == ModeDir {
			nlink = 2
		}
		writeNewcHeader(bw, Record{Entry: e, Ino: uint32(i + 1), NLink: nlink}, uint32(len(e.Data)))
		bw.Write(e.Data)
		bw.Write(make([]byte, pad4(len(e.Data))))
	}
	writeNewcHeader(bw, Record{Entry: Entry{Name: trailerName}, NLink: 1}, 0)
	if bw.err != nil {
		return fmt.Errorf("cpio: writing archive: %w", bw.err)
	}
	return nil
}

func checkEntries(sorted []Entry) error {
	dirs := make(map[string]bool, len(sorted))
	for i, e := range sorted {
		if err := checkName(e.Name); err != nil {
			return err
		}
		if i > 0 && sorted[i-1].Name == e.Name {
			return fmt.Errorf("cpio: %q appears twice", e.Name)
		}
		if e.Mode&^uint32(modeType|modePerm) != 0 {
			return fmt.Errorf("cpio: %q: mode %#o has bits outside type and permissions", e.Name, e.Mode)
		}
		switch e.Mode & modeType {
		case ModeDir:
			dirs[e.Name] = true
			if len(e.Data) != 0 {
				return fmt.Errorf("cpio: directory %q has data", e.Name)
			}
		case ModeRegular, ModeSymlink:
		case ModeChar:
			if len(e.Data) != 0 {
				return fmt.Errorf("cpio: device %q has data", e.Name)
			}
		default:
			return fmt.Errorf("cpio: %q: file type %#o is not a directory, regular file, symlink or character device", e.Name, e.Mode&modeType)
		}
		if e.Mode&modeType != ModeChar && (e.RdevMajor != 0 || e.RdevMinor != 0) {
			return fmt.Errorf("cpio: %q has device numbers but is not a device", e.Name)
		}
		if uint64(len(e.Data)) > 0xffffffff {
			return fmt.Errorf("cpio: %q is larger than 4 GiB", e.Name)
		}
		if parent := path.Dir(e.Name); parent != "." && !dirs[parent] {
			return fmt.Errorf("cpio: %q: parent directory %q is not in the archive", e.Name, parent)
		}
	}
	return nil
}

func checkName(name string) error {
	switch {
	case name == "" || name == ".":
		return errors.New("cpio: empty entry name")
	case len(name)+1 > maxNameSize:
		return fmt.Errorf("cpio: name %.40q… is longer than %d bytes", name, maxNameSize-1)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("cpio: name %q contains NUL", name)
	case strings.HasPrefix(name, "/"):
		return fmt.Errorf("cpio: name %q must be relative (no leading /)", name)
	case path.Clean(name) != name:
		return fmt.Errorf("cpio: name %q is not clean (want %q)", name, path.Clean(name))
	case name == ".." || strings.HasPrefix(name, "../"):
		return fmt.Errorf("cpio: name %q leaves the archive root", name)
	case name == trailerName:
		return fmt.Errorf("cpio: name %q is reserved for the trailer", name)
	}
	return nil
}

func writeNewcHeader(w *errWriter, r Record, size uint32) {
	var h [newcHeaderSize]byte
	copy(h[:], newcMagic)
	for i, v := range []uint32{
		r.Ino, r.Mode, r.UID, r.GID, r.NLink, r.MTime, size,
		r.DevMajor, r.DevMinor, r.RdevMajor, r.RdevMinor,
		uint32(len(r.Name) + 1), 0, // namesize, check
	} {
		putHex8(h[6+8*i:], v)
	}
	w.Write(h[:])
	w.Write([]byte(r.Name))
	w.Write(make([]byte, 1+pad4(newcHeaderSize+len(r.Name)+1)))
}

// ReadArchive parses a newc archive up to and including its trailer and
// returns its records in archive order. It accepts only "070701" headers with
// well-formed hex fields, NUL-terminated names no longer than PATH_MAX and
// complete file data; anything else is an error. Bytes after the trailer are
// ignored (the kernel allows concatenated archives and zero padding there).
// maxTotal bounds the sum of file sizes it will hold in memory.
func ReadArchive(r io.Reader, maxTotal int64) ([]Record, error) {
	var (
		out   []Record
		total int64
		off   int64
		hdr   [newcHeaderSize]byte
	)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return nil, fmt.Errorf("cpio: header at offset %d: %w", off, unexpectedEOF(err))
		}
		if string(hdr[:6]) != newcMagic {
			return nil, fmt.Errorf("cpio: header at offset %d: magic %q, want %q (newc)", off, hdr[:6], newcMagic)
		}
		var f [13]uint32
		for i := range f {
			v, ok := parseHex8(hdr[6+8*i : 14+8*i])
			if !ok {
				return nil, fmt.Errorf("cpio: header at offset %d: field %d %q is not 8 hex digits", off, i, hdr[6+8*i:14+8*i])
			}
			f[i] = v
		}
		size, nameSize := f[6], f[11]
		if nameSize == 0 || nameSize > maxNameSize {
			return nil, fmt.Errorf("cpio: header at offset %d: name size %d outside 1..%d", off, nameSize, maxNameSize)
		}
		nameBuf := make([]byte, int(nameSize)+pad4(newcHeaderSize+int(nameSize)))
		if _, err := io.ReadFull(r, nameBuf); err != nil {
			return nil, fmt.Errorf("cpio: name at offset %d: %w", off+newcHeaderSize, unexpectedEOF(err))
		}
		name := nameBuf[:nameSize]
		if name[nameSize-1] != 0 || bytes.IndexByte(name[:nameSize-1], 0) >= 0 {
			return nil, fmt.Errorf("cpio: name at offset %d is not a NUL-terminated string", off+newcHeaderSize)
		}
		off += int64(newcHeaderSize + len(nameBuf))
		rec := Record{
			Entry: Entry{Name: string(name[:nameSize-1]), Mode: f[1], RdevMajor: f[9], RdevMinor: f[10]},
			Ino:   f[0], UID: f[2], GID: f[3], NLink: f[4], MTime: f[5], DevMajor: f[7], DevMinor: f[8],
		}
		if rec.Name == trailerName {
			if size != 0 {
				return nil, fmt.Errorf("cpio: trailer at offset %d has size %d", off, size)
			}
			return out, nil
		}
		total += int64(size)
		if total > maxTotal {
			return nil, fmt.Errorf("cpio: %q: archive holds more than %d bytes of file data", rec.Name, maxTotal)
		}
		// Copy rather than allocate size bytes up front: a header may claim
		// more data than the input has.
		var data bytes.Buffer
		if n, err := io.CopyN(&data, r, int64(size)); err != nil {
			return nil, fmt.Errorf("cpio: %q: data at offset %d: %d of %d bytes: %w", rec.Name, off, n, size, unexpectedEOF(err))
		}
		if p := pad4(int(size)); p > 0 {
			if _, err := io.ReadFull(r, hdr[:p]); err != nil {
				return nil, fmt.Errorf("cpio: %q: padding: %w", rec.Name, unexpectedEOF(err))
			}
		}
		off += int64(size) + int64(pad4(int(size)))
		if size > 0 {
			rec.Data = data.Bytes()
		}
		out = append(out, rec)
	}
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func pad4(n int) int { return (4 - n%4) % 4 }

const hexDigits = "0123456789ABCDEF"

func putHex8(b []byte, v uint32) {
	for i := 7; i >= 0; i-- {
		b[i] = hexDigits[v&0xf]
		v >>= 4
	}
}

// parseHex8 accepts exactly 8 hex digits of either case (the kernel's
// simple_strntoul does too) and nothing else.
func parseHex8(b []byte) (uint32, bool) {
	var v uint32
	for _, c := range b {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint32(d)
	}
	return v, len(b) == 8
}

// errWriter keeps the first write error so the header code stays linear.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) {
	if e.err == nil && len(p) > 0 {
		_, e.err = e.w.Write(p)
	}
}
