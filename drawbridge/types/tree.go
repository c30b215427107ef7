package types

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Media types with a meaning to Drawbridge.
const (
	// DirectoryType marks a directory node (and a tag whose root is a
	// directory).
	DirectoryType = "application/vnd.drawbridge.directory.v1+json"
	// EntryType is the Content-Type of an unsigned tag body (a TreeEntry).
	EntryType = "application/vnd.drawbridge.entry.v1+json"
	// JWSType is the Content-Type of a signed tag body (JWS JSON
	// serialization).
	JWSType = "application/jose+json"
	// WasmType and TOMLType are the types clients give main.wasm and
	// Enarx.toml.
	WasmType = "application/wasm"
	TOMLType = "application/toml"
	// OctetStreamType is the default type of any other file.
	OctetStreamType = "application/octet-stream"
)

// maxTypeLen bounds a media type string.
const maxTypeLen = 255

// Meta describes one stored byte string: its digests, length and media type.
// It is what GET/HEAD send as Content-Digest, Content-Length and
// Content-Type, and the "digest", "length", "type" fields of a TreeEntry.
type Meta struct {
	Digest Digests
	Length int64
	Type   string
}

// Equal reports whether m and o have the same digest set, length and type.
func (m Meta) Equal(o Meta) bool {
	return m.Length == o.Length && m.Type == o.Type && m.Digest.Equal(o.Digest)
}

// Validate checks m is self-consistent: at least one digest, length ≥ 0, a
// printable type.
func (m Meta) Validate() error {
	if len(m.Digest) == 0 {
		return errors.New("at least one content digest value must be specified")
	}
	for a, v := range m.Digest {
		if a.Size() == 0 || len(v) != a.Size() {
			return fmt.Errorf("invalid %s digest", a)
		}
	}
	if m.Length < 0 {
		return fmt.Errorf("invalid length %d", m.Length)
	}
	return ValidateMediaType(m.Type)
}

// ValidateMediaType checks a Content-Type is non-empty, bounded and printable
// ASCII (it is stored and echoed verbatim in a header).
func ValidateMediaType(t string) error {
	if t == "" {
		return errors.New("media type is empty")
	}
	if len(t) > maxTypeLen {
		return fmt.Errorf("media type longer than %d bytes", maxTypeLen)
	}
	for i := 0; i < len(t); i++ {
		if t[i] < 0x20 || t[i] > 0x7e {
			return fmt.Errorf("media type contains byte %#x", t[i])
		}
	}
	return nil
}

// MarshalJSON encodes {"digest":{…},"length":N,"type":"…"}.
func (m Meta) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	m.appendFields(&b)
	b.WriteByte('}')
	return b.Bytes(), nil
}

// appendFields writes the opening brace and the three fields, no closing
// brace.
func (m Meta) appendFields(b *bytes.Buffer) {
	b.WriteString(`{"digest":`)
	m.Digest.appendJSON(b)
	fmt.Fprintf(b, `,"length":%d,"type":`, m.Length)
	appendString(b, m.Type)
}

// UnmarshalJSON decodes a Meta; all three fields are required and no others
// are allowed.
func (m *Meta) UnmarshalJSON(data []byte) error {
	e, err := ParseEntry(data)
	if err != nil {
		return err
	}
	if len(e.Extra) > 0 {
		return errors.New("meta: unexpected extra fields")
	}
	*m = e.Meta
	return nil
}

// Entry is a tree entry: the Meta of a node plus optional extra fields that
// are kept verbatim (canonicalized).
type Entry struct {
	Meta
	// Extra holds additional fields by name, each a JSON value.
	Extra map[string]json.RawMessage
}

// ParseEntry parses a tree entry (also the body of an unsigned tag).
func ParseEntry(data []byte) (Entry, error) {
	p := parser{data: data}
	e, err := p.entry()
	if err == nil {
		err = p.end("object")
	}
	if err != nil {
		return Entry{}, fmt.Errorf("tree entry: %w", err)
	}
	return e, nil
}

// MarshalJSON returns the canonical encoding: digest, length, type, then the
// extra fields in byte-wise key order; compact; serde string escaping.
func (e Entry) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	if err := e.appendJSON(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func (e Entry) appendJSON(b *bytes.Buffer) error {
	e.Meta.appendFields(b)
	keys := make([]string, 0, len(e.Extra))
	for k := range e.Extra {
		if k == "digest" || k == "length" || k == "type" {
			return fmt.Errorf("tree entry: extra field %q shadows a required field", k)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b.WriteByte(',')
		appendString(b, k)
		b.WriteByte(':')
		if err := appendCanonical(b, e.Extra[k], 0); err != nil {
			return fmt.Errorf("tree entry: field %q: %w", k, err)
		}
	}
	b.WriteByte('}')
	return nil
}

// Directory is the content of a directory node: entry name → entry.
type Directory map[TreeName]Entry

// maxDirectoryEntries bounds the entries of one directory node.
const maxDirectoryEntries = 100000

// ParseDirectory parses directory node content. Names must be valid tree
// names and unique. It reads the content once, in time and allocations
// linear in its size (see parser).
func ParseDirectory(data []byte) (Directory, error) {
	p := parser{data: data}
	d, err := p.directory()
	if err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	return d, nil
}

// Names returns the entry names in canonical (byte-wise) order.
func (d Directory) Names() []TreeName {
	ns := make([]TreeName, 0, len(d))
	for n := range d {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return ns
}

// MarshalJSON returns the canonical directory encoding (what is hashed).
func (d Directory) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, n := range d.Names() {
		if _, err := ParseTreeName(string(n)); err != nil {
			return nil, fmt.Errorf("directory: %w", err)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		appendString(&b, string(n))
		b.WriteByte(':')
		if err := d[n].appendJSON(&b); err != nil {
			return nil, fmt.Errorf("directory: entry %q: %w", n, err)
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// DirectoryNode returns the canonical content of d and the Entry that names
// it in its parent (or in a tag).
func DirectoryNode(d Directory) ([]byte, Entry, error) {
	body, err := d.MarshalJSON()
	if err != nil {
		return nil, Entry{}, err
	}
	sum, n := Compute(body)
	return body, Entry{Meta: Meta{Digest: sum, Length: n, Type: DirectoryType}}, nil
}

// FileEntry hashes a file's content and returns its Entry.
func FileEntry(r io.Reader, mediaType string) (Entry, error) {
	if err := ValidateMediaType(mediaType); err != nil {
		return Entry{}, err
	}
	h := NewHasher()
	if _, err := io.Copy(h, r); err != nil {
		return Entry{}, fmt.Errorf("hashing file: %w", err)
	}
	return Entry{Meta: Meta{Digest: h.Sum(), Length: h.Len(), Type: mediaType}}, nil
}

// MediaTypeFor returns the type upstream clients give a file by name:
// *.wasm → application/wasm, *.toml → application/toml, otherwise
// application/octet-stream.
func MediaTypeFor(name string) string {
	switch {
	case strings.HasSuffix(name, ".wasm"):
		return WasmType
	case strings.HasSuffix(name, ".toml"):
		return TOMLType
	}
	return OctetStreamType
}
