package types

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"unicode/utf16"
	"unicode/utf8"
)

// parser reads one in-memory JSON document in a single pass, byte by
// byte, and builds directories, entries, digest sets and canonical values
// straight from it.
//
// It replaced a parser built on encoding/json's Decoder, which read every
// entry's bytes two or three times (the directory, the entry, the digest
// set and each extra field each went through a Decoder of their own),
// allocated several times per token, and counted duplicate keys in a map
// per object: a 16 MiB directory node took 2 to 11 seconds of CPU and up
// to 5 GiB of allocations, depending on its shape, where decoding the same
// bytes into an `any` takes a fraction of a second. This one reads each
// byte once, allocates only what the result holds, and finds duplicate
// keys by comparing each key with the one before it (by sorting when the
// keys are not in order).
//
// It accepts exactly what the Decoder-based parser accepted and gives the
// same results (a differential fuzz test, FuzzParseMatchesReference, holds
// it to that), including encoding/json's quirks that decide what a hostile
// body means: strings are decoded as encoding/json decodes them (invalid
// UTF-8 and unpaired surrogates become U+FFFD), object keys are compared
// after decoding, and a length may be written as a JSON string holding a
// number.
type parser struct {
	data []byte
	pos  int
	// members is the stack of the members of the objects being
	// canonicalized, innermost last.
	members []member
	// keys holds decoded object keys that had escapes (keys without
	// escapes are slices of data).
	keys []byte
	// scratch holds a decoded string while it is used; tmp holds an
	// unsorted object's members while they are put in order.
	scratch, tmp []byte
	// out is where an entry's extra fields are canonicalized.
	out bytes.Buffer
}

// member is one member of an object being canonicalized: its decoded key
// and where `"key":value` was written in the output.
type member struct {
	key    []byte
	lo, hi int
}

func (p *parser) ws() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// peek skips white space and returns the next byte (0 at the end).
func (p *parser) peek() byte {
	p.ws()
	if p.pos < len(p.data) {
		return p.data[p.pos]
	}
	return 0
}

func (p *parser) syntaxError(what string) error {
	if p.pos >= len(p.data) {
		return errors.New("invalid JSON: unexpected end of input")
	}
	return fmt.Errorf("invalid JSON: %s, found %q at offset %d", what, p.data[p.pos], p.pos)
}

// end checks that only white space follows.
func (p *parser) end(what string) error {
	if p.peek() != 0 || p.pos < len(p.data) {
		return fmt.Errorf("invalid JSON: trailing data after %s", what)
	}
	return nil
}

// expect consumes byte c (after white space).
func (p *parser) expect(c byte, what string) error {
	if p.peek() != c {
		return p.syntaxError(what)
	}
	p.pos++
	return nil
}

// object reads `{ "key": value, ... }`, calling member for each key (as
// decoded; it stays valid) with the parser at its value, which
// member must consume. The byte at p.pos must be '{'.
func (p *parser) object(member func(key []byte) error) error {
	p.pos++ // '{'
	if p.peek() == '}' {
		p.pos++
		return nil
	}
	for {
		if p.peek() != '"' {
			return errors.New("invalid JSON: expected an object key")
		}
		k, err := p.str(true)
		if err != nil {
			return err
		}
		if err := p.expect(':', "expected ':' after an object key"); err != nil {
			return err
		}
		p.ws()
		if err := member(k); err != nil {
			return err
		}
		switch p.peek() {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return nil
		default:
			return p.syntaxError("expected ',' or '}' after an object member")
		}
	}
}

// scanString reads the string at p.pos (a '"') and returns its raw
// content. plain means it is its own decoding: no escapes, valid UTF-8.
func (p *parser) scanString() (raw []byte, plain bool, err error) {
	start := p.pos + 1
	i := start
	plain, ascii := true, true
	for {
		if i >= len(p.data) {
			p.pos = i
			return nil, false, errors.New("invalid JSON: unterminated string")
		}
		c := p.data[i]
		switch {
		case c == '"':
			raw = p.data[start:i]
			p.pos = i + 1
			if !ascii && plain {
				plain = utf8.Valid(raw)
			}
			return raw, plain, nil
		case c == '\\':
			plain = false
			i++
			if i >= len(p.data) {
				p.pos = i
				return nil, false, errors.New("invalid JSON: unterminated string")
			}
			switch p.data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if i+5 > len(p.data) || hex4(p.data[i+1:i+5]) < 0 {
					p.pos = i
					return nil, false, errors.New(`invalid JSON: invalid \u escape in a string`)
				}
				i += 5
			default:
				p.pos = i
				return nil, false, fmt.Errorf("invalid JSON: invalid escape %q in a string", `\`+string(p.data[i]))
			}
		case c < 0x20:
			p.pos = i
			return nil, false, fmt.Errorf("invalid JSON: control character %#x in a string", c)
		default:
			if c >= utf8.RuneSelf {
				ascii = false
			}
			i++
		}
	}
}

// hex4 decodes four hex digits (-1 if they are not).
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// unquote appends the decoding of a scanned string's raw content to dst
// the way encoding/json decodes it: invalid UTF-8 and unpaired surrogates
// become U+FFFD.
func unquote(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '\\':
			switch raw[i+1] {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r := hex4(raw[i+2:])
				i += 6
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
						r2 = hex4(raw[i+2:])
					}
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						r = d
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				dst = utf8.AppendRune(dst, r)
				continue
			default: // '"', '\\', '/'
				dst = append(dst, raw[i+1])
			}
			i += 2
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, n := utf8.DecodeRune(raw[i:])
			dst = utf8.AppendRune(dst, r)
			i += n
		}
	}
	return dst
}

// str reads the string at p.pos and returns its decoding: a slice of the
// input if it has no escapes, else of p.keys (keep: it stays valid) or of
// p.scratch (valid until the next str).
func (p *parser) str(keep bool) ([]byte, error) {
	raw, plain, err := p.scanString()
	if err != nil || plain {
		return raw, err
	}
	if keep {
		lo := len(p.keys)
		p.keys = unquote(p.keys, raw)
		return p.keys[lo:len(p.keys):len(p.keys)], nil
	}
	p.scratch = unquote(p.scratch[:0], raw)
	return p.scratch, nil
}

// number reads the number at p.pos and returns it as written.
func (p *parser) number() ([]byte, error) {
	d := p.data
	start, i := p.pos, p.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	digits := func() bool {
		j := i
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
		return i > j
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case !digits():
		p.pos = i
		return nil, p.syntaxError("invalid number")
	}
	if i < len(d) && d[i] == '.' {
		i++
		if !digits() {
			p.pos = i
			return nil, p.syntaxError("invalid number")
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if !digits() {
			p.pos = i
			return nil, p.syntaxError("invalid number")
		}
	}
	p.pos = i
	return d[start:i], nil
}

// isNumber reports whether s is a JSON number and nothing else.
func isNumber(s []byte) bool {
	q := parser{data: s}
	n, err := q.number()
	return err == nil && len(n) == len(s) && len(s) > 0
}

// literal reads true, false or null at p.pos.
func (p *parser) literal() ([]byte, error) {
	rest := p.data[p.pos:]
	for _, l := range [...]string{"true", "false", "null"} {
		if len(rest) >= len(l) && string(rest[:len(l)]) == l {
			p.pos += len(l)
			return rest[:len(l)], nil
		}
	}
	return nil, p.syntaxError("invalid value")
}

// canonical writes the value at p.pos canonically to b (see Canonical);
// depth is its nesting level.
func (p *parser) canonical(b *bytes.Buffer, depth int) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("JSON nested deeper than %d levels", maxJSONDepth)
	}
	switch c := p.peek(); {
	case c == '{':
		return p.canonicalObject(b, depth)
	case c == '[':
		p.pos++
		b.WriteByte('[')
		if p.peek() == ']' {
			p.pos++
			b.WriteByte(']')
			return nil
		}
		for {
			if err := p.canonical(b, depth+1); err != nil {
				return err
			}
			switch p.peek() {
			case ',':
				p.pos++
				b.WriteByte(',')
			case ']':
				p.pos++
				b.WriteByte(']')
				return nil
			default:
				return p.syntaxError("expected ',' or ']' after an array element")
			}
		}
	case c == '"':
		s, err := p.str(false)
		if err != nil {
			return err
		}
		appendString(b, s)
	case c == '-' || '0' <= c && c <= '9':
		n, err := p.number()
		if err != nil {
			return err
		}
		b.Write(n)
	case c == 0 && p.pos >= len(p.data):
		return errors.New("invalid JSON: unexpected end of input, expected a value")
	default:
		l, err := p.literal()
		if err != nil {
			return err
		}
		b.Write(l)
	}
	return nil
}

// canonicalObject writes the object at p.pos with its members sorted by
// key, refusing duplicate keys.
func (p *parser) canonicalObject(b *bytes.Buffer, depth int) error {
	start := b.Len()
	base := len(p.members)
	defer func() { p.members = p.members[:base] }()
	b.WriteByte('{')
	sorted := true
	err := p.object(func(k []byte) error {
		if len(p.members) > base {
			b.WriteByte(',')
			if sorted {
				switch bytes.Compare(p.members[len(p.members)-1].key, k) {
				case 0:
					return fmt.Errorf("duplicate key %q", k)
				case 1:
					sorted = false
				}
			}
		}
		lo := b.Len()
		appendString(b, k)
		b.WriteByte(':')
		if err := p.canonical(b, depth+1); err != nil {
			return err
		}
		p.members = append(p.members, member{k, lo, b.Len()})
		return nil
	})
	if err != nil {
		return err
	}
	if !sorted {
		ms := p.members[base:]
		slices.SortFunc(ms, func(x, y member) int { return bytes.Compare(x.key, y.key) })
		for i := 1; i < len(ms); i++ {
			if bytes.Equal(ms[i-1].key, ms[i].key) {
				return fmt.Errorf("duplicate key %q", ms[i].key)
			}
		}
		p.tmp = append(p.tmp[:0], b.Bytes()[start:]...)
		b.Truncate(start + 1)
		for i, m := range ms {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(p.tmp[m.lo-start : m.hi-start])
		}
	}
	b.WriteByte('}')
	return nil
}

// algorithm returns the Algorithm that key names, compared the way
// ParseAlgorithm compares it (strings.ToLower): case-insensitively. The
// names are ASCII, and no other character lowercases to one of theirs; a
// key of the same length with a non-ASCII character has fewer characters
// than the name, so EqualFold does not match it either.
func algorithm(key []byte) (Algorithm, error) {
	for _, a := range Algorithms {
		if len(key) == len(a) && bytes.EqualFold(key, []byte(a)) {
			return a, nil
		}
	}
	return ParseAlgorithm(string(key)) // the error
}

// digests reads the digest set at p.pos.
func (p *parser) digests() (Digests, error) {
	if p.peek() != '{' {
		if _, err := p.skip(); err != nil {
			return nil, fmt.Errorf("digest set: %w", err)
		}
		return nil, errors.New("digest set: expected a JSON object")
	}
	out := make(Digests, 1)
	err := p.object(func(k []byte) error {
		a, err := algorithm(k)
		if err != nil {
			return err
		}
		if _, dup := out[a]; dup {
			return fmt.Errorf("duplicate algorithm %s", a)
		}
		if p.peek() != '"' {
			if _, err := p.skip(); err != nil {
				return err
			}
			return fmt.Errorf("%s: value is not a string", a)
		}
		s, err := p.str(false)
		if err != nil {
			return err
		}
		sum := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
		n, err := base64.StdEncoding.Strict().Decode(sum, s)
		if err != nil {
			return fmt.Errorf("%s: invalid standard base64: %w", a, err)
		}
		if n != a.Size() {
			return fmt.Errorf("%s: digest is %d bytes, want %d", a, n, a.Size())
		}
		out[a] = sum[:n:n]
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("digest set: %w", err)
	}
	return out, nil
}

// skip reads the value at p.pos, whatever it is, and returns its first
// byte. Only for values that are then refused.
func (p *parser) skip() (byte, error) {
	c := p.peek()
	var sink bytes.Buffer
	return c, p.canonical(&sink, 0)
}

// length reads an entry's length: a JSON number, or (as encoding/json
// decodes a json.Number) a string holding one; it must be a non-negative
// integer written in decimal without leading zeros.
func (p *parser) length() (int64, error) {
	var n []byte
	switch c := p.peek(); {
	case c == '-' || '0' <= c && c <= '9':
		var err error
		if n, err = p.number(); err != nil {
			return 0, err
		}
	case c == '"':
		var err error
		if n, err = p.str(false); err != nil {
			return 0, err
		}
		if !isNumber(n) {
			return 0, errors.New("length is not a number")
		}
	case c == 'n': // null decodes to the empty json.Number
		if _, err := p.literal(); err != nil {
			return 0, err
		}
		n = nil
	default:
		if _, err := p.skip(); err != nil {
			return 0, err
		}
		return 0, errors.New("length is not a number")
	}
	var l int64
	ok := len(n) > 0 && (n[0] != '0' || len(n) == 1)
	for _, c := range n {
		if c < '0' || c > '9' || l > (math.MaxInt64-int64(c-'0'))/10 {
			ok = false
			break
		}
		l = l*10 + int64(c-'0')
	}
	if !ok {
		return 0, fmt.Errorf("invalid length %s", n)
	}
	return l, nil
}

// mediaType reads an entry's type: a string (null leaves it empty).
func (p *parser) mediaType() (string, error) {
	switch p.peek() {
	case '"':
		s, err := p.str(false)
		if err != nil {
			return "", err
		}
		switch string(s) { // the usual ones without an allocation
		case DirectoryType:
			return DirectoryType, nil
		case OctetStreamType:
			return OctetStreamType, nil
		case WasmType:
			return WasmType, nil
		case TOMLType:
			return TOMLType, nil
		}
		return string(s), nil
	case 'n':
		_, err := p.literal()
		return "", err
	}
	if _, err := p.skip(); err != nil {
		return "", err
	}
	return "", errors.New("type is not a string")
}

// extraField is an extra field of the entry being read: its value was
// canonicalized to p.out[lo:hi].
type extraField struct {
	key    string
	lo, hi int
}

// entry reads the tree entry at p.pos (see ParseEntry).
func (p *parser) entry() (Entry, error) {
	if p.peek() != '{' {
		return Entry{}, errors.New("expected a JSON object")
	}
	var e Entry
	var haveDigest, haveLength, haveType bool
	var extras []extraField
	p.out.Reset()
	dup := func(have *bool, k []byte) error {
		if *have {
			return fmt.Errorf("duplicate key %q", k)
		}
		*have = true
		return nil
	}
	err := p.object(func(k []byte) error {
		var err error
		switch string(k) {
		case "digest":
			if err := dup(&haveDigest, k); err != nil {
				return err
			}
			e.Digest, err = p.digests()
		case "length":
			if err := dup(&haveLength, k); err != nil {
				return err
			}
			e.Length, err = p.length()
		case "type":
			if err := dup(&haveType, k); err != nil {
				return err
			}
			e.Type, err = p.mediaType()
		default:
			key := string(k) // duplicates are found below
			lo := p.out.Len()
			if err := p.canonical(&p.out, 0); err != nil {
				return fmt.Errorf("field %q: %w", key, err)
			}
			extras = append(extras, extraField{key, lo, p.out.Len()})
		}
		return err
	})
	if err != nil {
		return Entry{}, err
	}
	if len(extras) > 0 {
		// One allocation for all the values.
		vals := bytes.Clone(p.out.Bytes())
		e.Extra = make(map[string]json.RawMessage, len(extras))
		for _, x := range extras {
			if _, ok := e.Extra[x.key]; ok {
				return Entry{}, fmt.Errorf("duplicate key %q", x.key)
			}
			e.Extra[x.key] = vals[x.lo:x.hi:x.hi]
		}
	}
	if !haveDigest || !haveLength || !haveType {
		return Entry{}, errors.New(`"digest", "length" and "type" are required`)
	}
	if err := e.Meta.Validate(); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// directory reads the directory node that is the whole input.
func (p *parser) directory() (Directory, error) {
	if p.peek() != '{' {
		return nil, errors.New("expected a JSON object")
	}
	type named struct {
		name TreeName
		e    Entry
	}
	var es []named
	err := p.object(func(k []byte) error {
		if len(es) == maxDirectoryEntries {
			return fmt.Errorf("more than %d entries", maxDirectoryEntries)
		}
		n, err := ParseTreeName(string(k))
		if err != nil {
			return err
		}
		e, err := p.entry()
		if err != nil {
			return fmt.Errorf("entry %q: %w", n, err)
		}
		es = append(es, named{n, e})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := p.end("object"); err != nil {
		return nil, err
	}
	d := make(Directory, len(es))
	for _, x := range es {
		if _, dup := d[x.name]; dup {
			return nil, fmt.Errorf("duplicate key %q", x.name)
		}
		d[x.name] = x.e
	}
	return d, nil
}
