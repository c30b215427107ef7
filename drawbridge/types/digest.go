package types

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strings"
)

// Algorithm is a digest algorithm name as used on the wire.
type Algorithm string

// The supported algorithms, in their canonical (sorted) order.
const (
	SHA224 Algorithm = "sha-224"
	SHA256 Algorithm = "sha-256"
	SHA384 Algorithm = "sha-384"
	SHA512 Algorithm = "sha-512"
)

// Algorithms lists every supported algorithm in canonical order. Clients
// compute all of them.
var Algorithms = []Algorithm{SHA224, SHA256, SHA384, SHA512}

// ParseAlgorithm parses an algorithm name case-insensitively.
func ParseAlgorithm(s string) (Algorithm, error) {
	a := Algorithm(strings.ToLower(s))
	if a.Size() == 0 {
		return "", fmt.Errorf("unknown digest algorithm %q (want one of sha-224, sha-256, sha-384, sha-512)", s)
	}
	return a, nil
}

// Size is the digest length in bytes, 0 for an unknown algorithm.
func (a Algorithm) Size() int {
	switch a {
	case SHA224:
		return sha256.Size224
	case SHA256:
		return sha256.Size
	case SHA384:
		return sha512.Size384
	case SHA512:
		return sha512.Size
	}
	return 0
}

func (a Algorithm) new() hash.Hash {
	switch a {
	case SHA224:
		return sha256.New224()
	case SHA256:
		return sha256.New()
	case SHA384:
		return sha512.New384()
	case SHA512:
		return sha512.New()
	}
	panic("types: unknown algorithm " + string(a)) // unreachable: Algorithm values come from ParseAlgorithm or the constants
}

// Digests is a set of digests of one byte string, keyed by algorithm. Two
// sets are equal only if they name the same algorithms with the same values.
type Digests map[Algorithm][]byte

// Equal reports whether d and o contain exactly the same algorithms and
// values.
func (d Digests) Equal(o Digests) bool {
	if len(d) != len(o) {
		return false
	}
	for a, v := range d {
		w, ok := o[a]
		if !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

// sorted returns the algorithms of d in canonical order.
func (d Digests) sorted() []Algorithm {
	as := make([]Algorithm, 0, len(d))
	for a := range d {
		as = append(as, a)
	}
	slices.Sort(as)
	return as
}

// String formats d as a Content-Digest header value:
// "sha-224=:<b64>:,sha-256=:<b64>:" (canonical order, standard base64 with
// padding, no spaces).
func (d Digests) String() string {
	var b strings.Builder
	for i, a := range d.sorted() {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(string(a))
		b.WriteString("=:")
		b.WriteString(base64.StdEncoding.EncodeToString(d[a]))
		b.WriteByte(':')
	}
	return b.String()
}

// maxDigestHeaderLen bounds a Content-Digest header value we parse.
const maxDigestHeaderLen = 4096

// ParseContentDigest parses one or more Content-Digest header values (several
// header lines are merged). Items are separated by "," with no surrounding
// spaces, as upstream writes them. An empty input yields an empty set. The
// same algorithm may repeat only with the same value.
func ParseContentDigest(values ...string) (Digests, error) {
	d := Digests{}
	total := 0
	for _, v := range values {
		total += len(v)
		if total > maxDigestHeaderLen {
			return nil, fmt.Errorf("content digest header longer than %d bytes", maxDigestHeaderLen)
		}
		if v == "" {
			continue
		}
		for _, item := range strings.Split(v, ",") {
			name, val, ok := strings.Cut(item, "=")
			if !ok {
				return nil, fmt.Errorf("content digest item %q: missing '='", item)
			}
			a, err := ParseAlgorithm(name)
			if err != nil {
				return nil, fmt.Errorf("content digest item %q: %w", item, err)
			}
			if len(val) < 2 || val[0] != ':' || val[len(val)-1] != ':' {
				return nil, fmt.Errorf("content digest item %q: value must be wrapped in ':'", item)
			}
			sum, err := decodeDigest(a, val[1:len(val)-1])
			if err != nil {
				return nil, fmt.Errorf("content digest item %q: %w", item, err)
			}
			if old, dup := d[a]; dup && !bytes.Equal(old, sum) {
				return nil, fmt.Errorf("content digest: conflicting values for %s", a)
			}
			d[a] = sum
		}
	}
	return d, nil
}

func decodeDigest(a Algorithm, s string) ([]byte, error) {
	sum, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%s: invalid standard base64: %w", a, err)
	}
	if len(sum) != a.Size() {
		return nil, fmt.Errorf("%s: digest is %d bytes, want %d", a, len(sum), a.Size())
	}
	return sum, nil
}

// MarshalJSON encodes d as {"sha-224":"<b64>",...} in canonical order.
func (d Digests) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	d.appendJSON(&b)
	return b.Bytes(), nil
}

func (d Digests) appendJSON(b *bytes.Buffer) {
	b.WriteByte('{')
	for i, a := range d.sorted() {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.WriteString(string(a))
		b.WriteString(`":"`)
		b.WriteString(base64.StdEncoding.EncodeToString(d[a]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
}

// UnmarshalJSON decodes {"sha-256":"<b64>",...}; unknown algorithms,
// duplicate keys and wrong-length digests are errors.
func (d *Digests) UnmarshalJSON(data []byte) error {
	p := parser{data: data}
	out, err := p.digests()
	if err == nil {
		err = p.end("object")
	}
	if err != nil {
		return err
	}
	*d = out
	return nil
}

// Hasher computes a digest set while bytes are written to it.
type Hasher struct {
	algs []Algorithm
	hs   []hash.Hash
	w    io.Writer
	n    int64
}

// NewHasher returns a Hasher for the given algorithms (all of them if none
// are given).
func NewHasher(algs ...Algorithm) *Hasher {
	if len(algs) == 0 {
		algs = Algorithms
	}
	h := &Hasher{algs: algs}
	ws := make([]io.Writer, len(algs))
	for i, a := range algs {
		h.hs = append(h.hs, a.new())
		ws[i] = h.hs[i]
	}
	h.w = io.MultiWriter(ws...)
	return h
}

// Write hashes p. It never fails.
func (h *Hasher) Write(p []byte) (int, error) {
	h.n += int64(len(p))
	return h.w.Write(p)
}

// Len is the number of bytes hashed so far.
func (h *Hasher) Len() int64 { return h.n }

// Sum returns the digests of everything written so far.
func (h *Hasher) Sum() Digests {
	d := make(Digests, len(h.algs))
	for i, a := range h.algs {
		d[a] = h.hs[i].Sum(nil)
	}
	return d
}

// Compute returns the digest set (all algorithms) and length of b.
func Compute(b []byte) (Digests, int64) {
	h := NewHasher()
	h.Write(b)
	return h.Sum(), h.Len()
}

// ErrDigestMismatch and ErrLengthMismatch are returned (wrapped) by a
// VerifyingReader when the stream does not match what was promised.
var (
	ErrDigestMismatch = errors.New("content digest mismatch")
	ErrLengthMismatch = errors.New("content length mismatch")
)

// VerifyingReader passes bytes through from an underlying reader while
// hashing them, and at EOF checks that exactly the expected number of bytes
// arrived and that their digests match. It never returns more than the
// expected length; a longer stream is an error as soon as it is detected. A
// consumer must treat the data as untrusted until Read has returned io.EOF.
type VerifyingReader struct {
	r      io.Reader
	want   Digests
	length int64
	h      *Hasher
	err    error
}

// NewVerifyingReader wraps r. want must name at least one algorithm.
func NewVerifyingReader(r io.Reader, want Digests, length int64) (*VerifyingReader, error) {
	if len(want) == 0 {
		return nil, errors.New("at least one content digest value must be specified")
	}
	if length < 0 {
		return nil, fmt.Errorf("invalid content length %d", length)
	}
	algs := want.sorted()
	for _, a := range algs {
		if a.Size() == 0 {
			return nil, fmt.Errorf("unknown digest algorithm %q", a)
		}
	}
	return &VerifyingReader{r: r, want: want, length: length, h: NewHasher(algs...)}, nil
}

// Read implements io.Reader.
func (v *VerifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	remaining := v.length - v.h.Len()
	if remaining == 0 {
		// Expect EOF: probe one byte to detect an over-long stream.
		var one [1]byte
		n, err := io.ReadFull(v.r, one[:])
		if n > 0 {
			v.err = fmt.Errorf("%w: more than the expected %d bytes", ErrLengthMismatch, v.length)
			return 0, v.err
		}
		if err != io.EOF && err != io.ErrUnexpectedEOF {
			v.err = err
			return 0, err
		}
		v.err = v.finish()
		return 0, v.err
	}
	if int64(len(p)) > remaining {
		p = p[:remaining]
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	if err == io.EOF {
		if v.h.Len() != v.length {
			v.err = fmt.Errorf("%w, expected: %d, got %d", ErrLengthMismatch, v.length, v.h.Len())
			return n, v.err
		}
		v.err = v.finish()
		return n, v.err
	}
	return n, err
}

func (v *VerifyingReader) finish() error {
	if !v.h.Sum().Equal(v.want) {
		return ErrDigestMismatch
	}
	return io.EOF
}

// Len is the number of bytes read so far.
func (v *VerifyingReader) Len() int64 { return v.h.Len() }
