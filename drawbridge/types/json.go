package types

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxJSONDepth bounds nesting in extra entry fields.
const maxJSONDepth = 32

type keyValue struct {
	key   string
	value json.RawMessage
}

// decodeObject splits one JSON object into its members in document order,
// rejecting duplicate keys (encoding/json silently keeps the last one, which
// would let two parsers disagree about a Merkle node) and trailing data.
func decodeObject(data []byte) ([]keyValue, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("expected a JSON object")
	}
	var kvs []keyValue
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
		k, ok := tok.(string)
		if !ok {
			return nil, errors.New("invalid JSON: expected an object key")
		}
		if seen[k] {
			return nil, fmt.Errorf("duplicate key %q", k)
		}
		seen[k] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("invalid JSON value for %q: %w", k, err)
		}
		kvs = append(kvs, keyValue{k, v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("invalid JSON: trailing data after object")
	}
	return kvs, nil
}

// appendString writes s as a JSON string the way serde_json does: only '"',
// '\\' and control characters are escaped (\b \f \n \r \t short forms,
// others as \u00xx with lowercase hex). Unlike encoding/json it escapes
// neither HTML characters nor U+2028/U+2029, which is why this is
// hand-written: encoding/json cannot be told to leave U+2028 alone, and the
// bytes must match upstream exactly because they are hashed.
func appendString(b *bytes.Buffer, s string) {
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
// It reads raw once, as a stream of tokens, and writes each value once:
// the cost is linear in the size of raw, whatever its nesting. (Decoding
// every nested value again from its raw bytes, level by level, cost 40 to
// 170 times the input in allocations and half a second per MiB at the
// maximum depth, so one 16 MiB directory node with a deeply nested extra
// field held a core for seconds.) Only an object whose keys are not
// already in canonical order has its members copied once more, to put
// them in order.
func appendCanonical(b *bytes.Buffer, raw json.RawMessage, depth int) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := canonicalValue(b, dec, depth); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("invalid JSON: trailing data after the value")
	}
	return nil
}

// canonicalValue writes the next value of dec canonically (see
// appendCanonical).
func canonicalValue(b *bytes.Buffer, dec *json.Decoder, depth int) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("JSON nested deeper than %d levels", maxJSONDepth)
	}
	tok, err := dec.Token()
	if err == io.EOF {
		return errors.New("empty JSON value")
	} else if err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			return canonicalObject(b, dec, depth)
		case '[':
			b.WriteByte('[')
			for i := 0; dec.More(); i++ {
				if i > 0 {
					b.WriteByte(',')
				}
				if err := canonicalValue(b, dec, depth+1); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil { // ']'
				return fmt.Errorf("invalid JSON array: %w", err)
			}
			b.WriteByte(']')
			return nil
		}
		return fmt.Errorf("invalid JSON: unexpected %q", v)
	case string:
		if !utf8.ValidString(v) {
			return errors.New("invalid UTF-8 in JSON string")
		}
		appendString(b, v)
	case json.Number:
		b.WriteString(string(v)) // as written
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case nil:
		b.WriteString("null")
	default:
		return errors.New("invalid JSON value")
	}
	return nil
}

// canonicalObject writes the members of an object whose '{' dec has just
// read, sorted by key; duplicate keys are refused (see decodeObject).
func canonicalObject(b *bytes.Buffer, dec *json.Decoder, depth int) error {
	type member struct {
		key    string
		lo, hi int // the member's `"key":value` in b
	}
	start := b.Len()
	b.WriteByte('{')
	var ms []member
	seen := map[string]bool{}
	sorted := true
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("invalid JSON: %w", err)
		}
		k, ok := tok.(string)
		if !ok {
			return errors.New("invalid JSON: expected an object key")
		}
		if seen[k] {
			return fmt.Errorf("duplicate key %q", k)
		}
		seen[k] = true
		if len(ms) > 0 {
			b.WriteByte(',')
			sorted = sorted && ms[len(ms)-1].key < k
		}
		lo := b.Len()
		appendString(b, k)
		b.WriteByte(':')
		if err := canonicalValue(b, dec, depth+1); err != nil {
			return err
		}
		ms = append(ms, member{k, lo, b.Len()})
	}
	if _, err := dec.Token(); err != nil { // '}'
		return fmt.Errorf("invalid JSON object: %w", err)
	}
	if !sorted {
		members := bytes.Clone(b.Bytes()[start:])
		b.Truncate(start + 1)
		slices.SortFunc(ms, func(x, y member) int { return strings.Compare(x.key, y.key) })
		for i, m := range ms {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(members[m.lo-start : m.hi-start])
		}
	}
	b.WriteByte('}')
	return nil
}
