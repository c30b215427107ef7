// Package bundle carries a Drawbridge package from the untrusted host into a
// Keep and verifies it there.
//
// A Keep may have no network (the sandbox backend has none), so the host
// fetches the nodes of a package — the tag entry, the root node and, for a
// directory package, main.wasm and Enarx.toml — together with the metadata
// the registry sent for each (Content-Type, Content-Digest), and encodes them
// as a bundle. Inside the Keep, Verify checks the bundle using nothing but
// its bytes: the tag entry against the pinned digest (if the user gave one),
// the root node against the tag entry, each file against its directory entry
// (media type, length, digest set) and every body against its digest, with
// upstream's size limits. A lying host can therefore only cause a
// verification failure, or deliver a different package whose root digest
// then appears in the Keep's certificate (Package.Digest).
//
// Format (all integers big-endian; parsed with x/crypto/cryptobyte):
//
//	magic    "enarx-bundle/1\n"
//	source   u16-length-prefixed UTF-8: the spec the host fetched ("host/user/repo:tag")
//	pin      u16-length-prefixed Content-Digest form, empty if unpinned
//	records  until the end, each:
//	  path   u16-length-prefixed: "@tag" for the tag entry, "" for the root
//	         node, "main.wasm" or "Enarx.toml" for the files
//	  type   u16-length-prefixed Content-Type as sent by the registry
//	  digest u16-length-prefixed Content-Digest as sent by the registry
//	  body   u32-length-prefixed bytes
//
// Decoding copies nothing: bodies are sub-slices of the bundle.
package bundle

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/cryptobyte"
)

// Magic starts every bundle.
const Magic = "enarx-bundle/1\n"

// Record paths.
const (
	TagPath    = "@tag"
	RootPath   = ""
	WasmName   = "main.wasm"
	ConfigName = "Enarx.toml"
)

// Size limits (upstream exec-wasmtime's).
const (
	MaxTagSize       = 1_000_000
	MaxDirectorySize = 1_000_000
	MaxConfigSize    = 1_000_000
	MaxWasmSize      = 100_000_000
)

// Record is one node as the host received it. Type and Digest are what the
// registry sent in Content-Type and Content-Digest.
type Record struct {
	Path   string
	Type   string
	Digest string
	Body   []byte
}

// Bundle is a decoded, NOT yet verified bundle.
type Bundle struct {
	Source  string
	Pin     string
	Records []Record
}

// Encode writes b in the bundle format.
func Encode(w io.Writer, b *Bundle) error {
	out, err := b.Marshal()
	if err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}

// Marshal returns b encoded.
func (b *Bundle) Marshal() ([]byte, error) {
	n := HeaderSize(b.Source, b.Pin)
	for _, r := range b.Records {
		n += RecordHeaderSize(r.Path, r.Type, r.Digest) + len(r.Body)
	}
	out, err := AppendHeader(make([]byte, 0, n), b.Source, b.Pin)
	if err != nil {
		return nil, err
	}
	for _, r := range b.Records {
		if out, err = AppendRecordHeader(out, r.Path, r.Type, r.Digest, len(r.Body)); err != nil {
			return nil, err
		}
		out = append(out, r.Body...)
	}
	return out, nil
}

// HeaderSize is the encoded size of a bundle header.
func HeaderSize(source, pin string) int { return len(Magic) + 2 + len(source) + 2 + len(pin) }

// RecordHeaderSize is the encoded size of a record header (without body).
func RecordHeaderSize(path, typ, digest string) int {
	return 2 + len(path) + 2 + len(typ) + 2 + len(digest) + 4
}

// AppendHeader appends the bundle header to dst. Together with
// AppendRecordHeader it lets a producer write bodies straight into the
// final buffer (a 100 MB module is then never copied).
func AppendHeader(dst []byte, source, pin string) ([]byte, error) {
	if len(source) > 0xffff || len(pin) > 0xffff {
		return nil, errors.New("encoding bundle: source or pin too long")
	}
	dst = append(dst, Magic...)
	dst = appendString16(dst, source)
	return appendString16(dst, pin), nil
}

// AppendRecordHeader appends the header of a record whose n body bytes
// must follow.
func AppendRecordHeader(dst []byte, path, typ, digest string, n int) ([]byte, error) {
	if len(path) > 0xffff || len(typ) > 0xffff || len(digest) > 0xffff {
		return nil, fmt.Errorf("encoding bundle: node %q: header field too long", path)
	}
	if n < 0 || n > MaxWasmSize {
		return nil, fmt.Errorf("encoding bundle: node %q is larger than %d bytes", path, MaxWasmSize)
	}
	dst = appendString16(dst, path)
	dst = appendString16(dst, typ)
	dst = appendString16(dst, digest)
	return binary.BigEndian.AppendUint32(dst, uint32(n)), nil
}

func appendString16(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

// MaxRecords bounds the records of a bundle (tag, root, main.wasm,
// Enarx.toml).
const MaxRecords = 4

// Decode parses a bundle without verifying anything but its framing: known
// record paths, no duplicates, bodies within the size limits.
func Decode(data []byte) (*Bundle, error) {
	s := cryptobyte.String(data)
	var magic []byte
	if !s.ReadBytes(&magic, len(Magic)) || string(magic) != Magic {
		return nil, errors.New("bundle: bad magic (not an enarx package bundle)")
	}
	b := &Bundle{}
	var src, pin cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&src) || !s.ReadUint16LengthPrefixed(&pin) {
		return nil, errors.New("bundle: truncated header")
	}
	b.Source, b.Pin = string(src), string(pin)
	seen := map[string]bool{}
	for !s.Empty() {
		var path, typ, dig cryptobyte.String
		var n uint32
		if !s.ReadUint16LengthPrefixed(&path) || !s.ReadUint16LengthPrefixed(&typ) ||
			!s.ReadUint16LengthPrefixed(&dig) || !s.ReadUint32(&n) {
			return nil, fmt.Errorf("bundle: truncated record %d", len(b.Records))
		}
		p := string(path)
		limit, ok := limits[p]
		if !ok {
			return nil, fmt.Errorf("bundle: unexpected node %q", p)
		}
		if seen[p] {
			return nil, fmt.Errorf("bundle: duplicate node %q", p)
		}
		seen[p] = true
		if int64(n) > limit {
			return nil, fmt.Errorf("bundle: node %q of %d bytes exceeds the limit of %d bytes", nodeName(p), n, limit)
		}
		var body []byte
		if !s.ReadBytes(&body, int(n)) {
			return nil, fmt.Errorf("bundle: node %q is truncated", nodeName(p))
		}
		b.Records = append(b.Records, Record{Path: p, Type: string(typ), Digest: string(dig), Body: body})
	}
	return b, nil
}

var limits = map[string]int64{
	TagPath:    MaxTagSize,
	RootPath:   MaxWasmSize, // a single-file package's root is main.wasm
	WasmName:   MaxWasmSize,
	ConfigName: MaxConfigSize,
}

func nodeName(p string) string {
	switch p {
	case TagPath:
		return "tag entry"
	case RootPath:
		return "/"
	}
	return "/" + p
}

func (b *Bundle) record(p string) (Record, bool) {
	for _, r := range b.Records {
		if r.Path == p {
			return r, true
		}
	}
	return Record{}, false
}
