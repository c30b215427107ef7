package types

import (
	"bytes"
	"encoding/json"
	"errors"
)

// maxJSONDepth bounds nesting in extra entry fields.
const maxJSONDepth = 32

// appendString writes s as a JSON string the way serde_json does: only '"',
// '\\' and control characters are escaped (\b \f \n \r \t short forms,
// others as \u00xx with lowercase hex). Unlike encoding/json it escapes
// neither HTML characters nor U+2028/U+2029, which is why this is
// hand-written: encoding/json cannot be told to leave U+2028 alone, and the
// bytes must match upstream exactly because they are hashed.
func appendString[S string | []byte](b *bytes.Buffer, s S) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			b.WriteString(`\"`)
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\b':
			b.WriteString(`\b`)
		case c == '\f':
			b.WriteString(`\f`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}

// Canonical re-encodes one JSON value as serde_json writes it: compact,
// object keys in byte order, serde's string escaping, numbers as written.
// Upstream Drawbridge stores records (users, repositories) in this form
// and checks the request's Content-Digest and Content-Length against it.
func Canonical(raw []byte) ([]byte, error) {
	var b bytes.Buffer
	if err := appendCanonical(&b, raw, 0); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// appendCanonical re-encodes an arbitrary JSON value compactly with object
// keys sorted byte-wise (serde_json's BTreeMap order) and serde string
// escaping. Numbers are kept as written. depth is the nesting level of raw
// itself (values nested deeper than maxJSONDepth are refused).
//
// It reads raw once (parse.go) and writes each value once: the cost is
// linear in the size of raw, whatever its nesting. Only an object whose
// keys are not already in canonical order has its members copied once
// more, to put them in order.
func appendCanonical(b *bytes.Buffer, raw json.RawMessage, depth int) error {
	p := parser{data: raw}
	if p.peek() == 0 && p.pos >= len(raw) {
		return errors.New("empty JSON value")
	}
	if err := p.canonical(b, depth); err != nil {
		return err
	}
	return p.end("the value")
}
