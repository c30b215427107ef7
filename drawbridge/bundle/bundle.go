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
	"bytes"
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
	var hdr cryptobyte.Builder
	hdr.AddBytes([]byte(Magic))
	addString16(&hdr, b.Source)
	addString16(&hdr, b.Pin)
	out, err := hdr.Bytes()
	if err != nil {
		return fmt.Errorf("encoding bundle: %w", err)
	}
	if _, err := w.Write(out); err != nil {
		return err
	}
	for _, r := range b.Records {
		var rb cryptobyte.Builder
		addString16(&rb, r.Path)
		addString16(&rb, r.Type)
		addString16(&rb, r.Digest)
		if len(r.Body) > MaxWasmSize {
			return fmt.Errorf("encoding bundle: node %q is larger than %d bytes", r.Path, MaxWasmSize)
		}
		rb.AddUint32(uint32(len(r.Body)))
		head, err := rb.Bytes()
		if err != nil {
			return fmt.Errorf("encoding bundle: node %q: %w", r.Path, err)
		}
		if _, err := w.Write(head); err != nil {
			return err
		}
		if _, err := w.Write(r.Body); err != nil {
			return err
		}
	}
	return nil
}

// Marshal returns b encoded.
func (b *Bundle) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	if err := Encode(&buf, b); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func addString16(b *cryptobyte.Builder, s string) {
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(s)) })
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
