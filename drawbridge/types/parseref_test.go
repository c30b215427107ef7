package types

// The Decoder-based parser that parse.go replaced, kept as the reference
// that FuzzParseMatchesReference holds the new one to: both must accept
// the same inputs and give the same results.

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

// refDigests decodes as Digests did: json.Unmarshal calls its
// UnmarshalJSON.
type refDigests Digests

func (d *refDigests) UnmarshalJSON(data []byte) error {
	out, err := refParseDigests(data)
	if err == nil {
		*d = refDigests(out)
	}
	return err
}

func refUnmarshalDigests(raw []byte, d *Digests) error {
	return json.Unmarshal(raw, (*refDigests)(d))
}

type refKeyValue struct {
	key   string
	value json.RawMessage
}

// decodeObject splits one JSON object into its members in document order,
// rejecting duplicate keys (encoding/json silently keeps the last one, which
// would let two parsers disagree about a Merkle node) and trailing data.
func refDecodeObject(data []byte) ([]refKeyValue, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("expected a JSON object")
	}
	var kvs []refKeyValue
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
		kvs = append(kvs, refKeyValue{k, v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("invalid JSON: trailing data after object")
	}
	return kvs, nil
}

// Canonical re-encodes one JSON value as serde_json writes it: compact,
// object keys in byte order, serde's string escaping, numbers as written.
// Upstream Drawbridge stores records (users, repositories) in this form
// and checks the request's Content-Digest and Content-Length against it.
func refCanonical(raw []byte) ([]byte, error) {
	var b bytes.Buffer
	if err := refAppendCanonical(&b, raw, 0); err != nil {
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
func refAppendCanonical(b *bytes.Buffer, raw json.RawMessage, depth int) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := refCanonicalValue(b, dec, depth); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("invalid JSON: trailing data after the value")
	}
	return nil
}

// canonicalValue writes the next value of dec canonically (see
// appendCanonical).
func refCanonicalValue(b *bytes.Buffer, dec *json.Decoder, depth int) error {
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
			return refCanonicalObject(b, dec, depth)
		case '[':
			b.WriteByte('[')
			for i := 0; dec.More(); i++ {
				if i > 0 {
					b.WriteByte(',')
				}
				if err := refCanonicalValue(b, dec, depth+1); err != nil {
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
func refCanonicalObject(b *bytes.Buffer, dec *json.Decoder, depth int) error {
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
		if err := refCanonicalValue(b, dec, depth+1); err != nil {
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

// ParseEntry parses a tree entry (also the body of an unsigned tag).
func refParseEntry(data []byte) (Entry, error) {
	kvs, err := refDecodeObject(data)
	if err != nil {
		return Entry{}, fmt.Errorf("tree entry: %w", err)
	}
	var e Entry
	var haveDigest, haveLength, haveType bool
	for _, kv := range kvs {
		switch kv.key {
		case "digest":
			if err := refUnmarshalDigests(kv.value, &e.Digest); err != nil {
				return Entry{}, fmt.Errorf("tree entry: %w", err)
			}
			haveDigest = true
		case "length":
			var n json.Number
			if err := json.Unmarshal(kv.value, &n); err != nil {
				return Entry{}, errors.New("tree entry: length is not a number")
			}
			l, err := n.Int64()
			if err != nil || l < 0 || n.String() != fmt.Sprint(l) {
				return Entry{}, fmt.Errorf("tree entry: invalid length %s", n)
			}
			e.Length = l
			haveLength = true
		case "type":
			if err := json.Unmarshal(kv.value, &e.Type); err != nil {
				return Entry{}, errors.New("tree entry: type is not a string")
			}
			haveType = true
		default:
			var b bytes.Buffer
			if err := refAppendCanonical(&b, kv.value, 0); err != nil {
				return Entry{}, fmt.Errorf("tree entry: field %q: %w", kv.key, err)
			}
			if e.Extra == nil {
				e.Extra = map[string]json.RawMessage{}
			}
			e.Extra[kv.key] = b.Bytes()
		}
	}
	if !haveDigest || !haveLength || !haveType {
		return Entry{}, errors.New(`tree entry: "digest", "length" and "type" are required`)
	}
	if err := e.Meta.Validate(); err != nil {
		return Entry{}, fmt.Errorf("tree entry: %w", err)
	}
	return e, nil
}

// ParseDirectory parses directory node content. Names must be valid tree
// names and unique.
func refParseDirectory(data []byte) (Directory, error) {
	kvs, err := refDecodeObject(data)
	if err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	if len(kvs) > maxDirectoryEntries {
		return nil, fmt.Errorf("directory: more than %d entries", maxDirectoryEntries)
	}
	d := make(Directory, len(kvs))
	for _, kv := range kvs {
		n, err := ParseTreeName(kv.key)
		if err != nil {
			return nil, fmt.Errorf("directory: %w", err)
		}
		e, err := refParseEntry(kv.value)
		if err != nil {
			return nil, fmt.Errorf("directory: entry %q: %w", n, err)
		}
		d[n] = e
	}
	return d, nil
}

// UnmarshalJSON decodes {"sha-256":"<b64>",...}; unknown algorithms,
// duplicate keys and wrong-length digests are errors.
func refParseDigests(data []byte) (Digests, error) {
	kvs, err := refDecodeObject(data)
	if err != nil {
		return nil, fmt.Errorf("digest set: %w", err)
	}
	out := make(Digests, len(kvs))
	for _, kv := range kvs {
		a, err := ParseAlgorithm(kv.key)
		if err != nil {
			return nil, fmt.Errorf("digest set: %w", err)
		}
		if _, dup := out[a]; dup {
			return nil, fmt.Errorf("digest set: duplicate algorithm %s", a)
		}
		var s string
		if err := json.Unmarshal(kv.value, &s); err != nil {
			return nil, fmt.Errorf("digest set: %s: value is not a string", a)
		}
		sum, err := decodeDigest(a, s)
		if err != nil {
			return nil, fmt.Errorf("digest set: %w", err)
		}
		out[a] = sum
	}
	return out, nil
}
