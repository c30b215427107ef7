package types

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
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
// escaping. Numbers are kept as written.
func appendCanonical(b *bytes.Buffer, raw json.RawMessage, depth int) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("JSON nested deeper than %d levels", maxJSONDepth)
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return errors.New("empty JSON value")
	}
	switch raw[0] {
	case '{':
		kvs, err := decodeObject(raw)
		if err != nil {
			return err
		}
		slices.SortFunc(kvs, func(x, y keyValue) int { return strings.Compare(x.key, y.key) })
		b.WriteByte('{')
		for i, kv := range kvs {
			if i > 0 {
				b.WriteByte(',')
			}
			appendString(b, kv.key)
			b.WriteByte(':')
			if err := appendCanonical(b, kv.value, depth+1); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return fmt.Errorf("invalid JSON array: %w", err)
		}
		b.WriteByte('[')
		for i, it := range items {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := appendCanonical(b, it, depth+1); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Errorf("invalid JSON string: %w", err)
		}
		if !utf8.ValidString(s) {
			return errors.New("invalid UTF-8 in JSON string")
		}
		appendString(b, s)
	default:
		// number, true, false, null: validate and copy verbatim.
		var v any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("invalid JSON value: %w", err)
		}
		switch v.(type) {
		case json.Number, bool, nil:
		default:
			return errors.New("invalid JSON value")
		}
		b.Write(raw)
	}
	return nil
}
