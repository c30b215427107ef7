package bundle

import (
	"bytes"
	"errors"
	"fmt"
	"maps"

	"github.com/enarx-go/enarx/drawbridge/types"
)

// Package is a verified package: what a Keep may run.
type Package struct {
	// Source is the spec the host says it fetched (informational only: it
	// is not verified; Digest is what identifies the package).
	Source string
	// Digest identifies the package: the root node's SHA-256 as the tag
	// entry names it, in Content-Digest form ("sha-256=:…:"); if the entry
	// has no SHA-256, the digest the root's body was verified with
	// (VerificationSet), never a value nothing checked.
	Digest string
	// Root is the verified tag entry (the root node's entry).
	Root types.Entry
	// Wasm is main.wasm; Config is Enarx.toml, nil if the package has none.
	Wasm   []byte
	Config []byte
}

// Error is a verification failure; Node names the node that failed ("tag
// entry", "/", "/main.wasm", "/Enarx.toml").
type Error struct {
	Source string
	Node   string
	Err    error
}

func (e *Error) Error() string {
	src := e.Source
	if src == "" {
		src = "package"
	}
	return fmt.Sprintf("verifying %s: node %s: %v", src, e.Node, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Verify decodes a bundle and verifies the whole Merkle chain from the tag
// entry (and the pin, if the bundle carries one) down to main.wasm and
// Enarx.toml. It returns the package only if every check passed.
func Verify(data []byte) (*Package, error) {
	b, err := Decode(data)
	if err != nil {
		return nil, err
	}
	return b.Verify()
}

// Verify verifies a decoded bundle (see the package Verify).
func (b *Bundle) Verify() (*Package, error) {
	fail := func(node string, err error) (*Package, error) {
		return nil, &Error{Source: b.Source, Node: node, Err: err}
	}
	pin, err := b.pin()
	if err != nil {
		return fail("tag entry", err)
	}
	entry, err := b.tagEntry(pin)
	if err != nil {
		return fail("tag entry", err)
	}
	pkg := &Package{Source: b.Source, Root: entry, Digest: PackageDigest(entry.Digest)}
	v := &verifier{b: b, pin: pin, used: map[string]bool{TagPath: true}}
	if node, err := v.tree(entry, pkg); err != nil {
		return fail(node, err)
	}
	for _, r := range b.Records {
		if !v.used[r.Path] {
			return fail(nodeName(r.Path), errors.New("present in the bundle but not named by the package"))
		}
	}
	return pkg, nil
}

// pin parses the bundle's pin: nil if it carries none, else exactly one
// digest.
func (b *Bundle) pin() (types.Digests, error) {
	if b.Pin == "" {
		return nil, nil
	}
	pin, err := types.ParseContentDigest(b.Pin)
	if err != nil || len(pin) != 1 {
		return nil, fmt.Errorf("invalid pinned digest %q", b.Pin)
	}
	return pin, nil
}

// tagEntry checks the tag entry against its record's digest and the pin,
// if the bundle carries one. The entry is trusted only through the pin;
// without one its root digest is what the Keep reports. That the entry
// names the pin is not enough: the root's body is checked against the pin
// too (verifier.node).
func (b *Bundle) tagEntry(pin types.Digests) (types.Entry, error) {
	tag, ok := b.record(TagPath)
	if !ok {
		return types.Entry{}, errors.New("missing from the bundle")
	}
	switch tag.Type {
	case types.EntryType:
	case types.JWSType:
		return types.Entry{}, errors.New("signed tags are not currently supported")
	default:
		return types.Entry{}, fmt.Errorf("unexpected content type %q (want %s)", tag.Type, types.EntryType)
	}
	tagDigest, err := types.ParseContentDigest(tag.Digest)
	if err != nil || len(tagDigest) == 0 {
		return types.Entry{}, fmt.Errorf("invalid Content-Digest %q", tag.Digest)
	}
	if err := CheckBody(tag.Body, tagDigest, int64(len(tag.Body))); err != nil {
		return types.Entry{}, err
	}
	entry, err := types.ParseEntry(tag.Body)
	if err != nil {
		return types.Entry{}, err
	}
	if err := CheckPin(pin, entry.Digest); err != nil {
		return types.Entry{}, err
	}
	return entry, nil
}

// verifier checks a bundle's nodes and notes the records it used.
type verifier struct {
	b *Bundle
	// pin is the bundle's pin (nil if none); it applies to the root node.
	pin  types.Digests
	used map[string]bool
}

// tree verifies the nodes below the tag entry into pkg: the root, and for
// a directory main.wasm and Enarx.toml. On failure it names the node.
func (v *verifier) tree(entry types.Entry, pkg *Package) (node string, err error) {
	switch entry.Type {
	case types.WasmType: // a single-file package: the root is main.wasm
		if pkg.Wasm, err = v.node(RootPath, entry.Meta, types.WasmType, MaxWasmSize); err != nil {
			return "/", err
		}
	case types.DirectoryType:
		body, err := v.node(RootPath, entry.Meta, types.DirectoryType, MaxDirectorySize)
		if err != nil {
			return "/", err
		}
		dir, err := types.ParseDirectory(body)
		if err != nil {
			return "/", err
		}
		we, ok := dir[WasmName]
		if !ok {
			return "/" + WasmName, errors.New("the package has no main.wasm")
		}
		if pkg.Wasm, err = v.node(WasmName, we.Meta, types.WasmType, MaxWasmSize); err != nil {
			return "/" + WasmName, err
		}
		if ce, ok := dir[ConfigName]; ok {
			if pkg.Config, err = v.node(ConfigName, ce.Meta, types.TOMLType, MaxConfigSize); err != nil {
				return "/" + ConfigName, err
			}
		}
	default:
		return "/", fmt.Errorf("unsupported package root type %q (want %s or %s)", entry.Type, types.DirectoryType, types.WasmType)
	}
	return "", nil
}

// node returns the body of the record at path p after checking that its
// entry (want) has the expected type and fits limit, and that the record
// matches the entry and its body the digest (and, for the root, the pin).
func (v *verifier) node(p string, want types.Meta, wantType string, limit int64) ([]byte, error) {
	v.used[p] = true
	if want.Type != wantType {
		return nil, fmt.Errorf("entry has content type %q, want %q", want.Type, wantType)
	}
	if want.Length > limit {
		return nil, fmt.Errorf("%d bytes exceeds the limit of %d bytes", want.Length, limit)
	}
	r, ok := v.b.record(p)
	if !ok {
		return nil, errors.New("missing from the bundle")
	}
	got, err := types.ParseContentDigest(r.Digest)
	if err != nil {
		return nil, fmt.Errorf("invalid Content-Digest: %w", err)
	}
	m := types.Meta{Digest: got, Length: int64(len(r.Body)), Type: r.Type}
	switch {
	case m.Type != want.Type:
		return nil, fmt.Errorf("content type %q does not match its entry (%q)", m.Type, want.Type)
	case m.Length != want.Length:
		return nil, fmt.Errorf("length %d does not match its entry (%d)", m.Length, want.Length)
	case !m.Digest.Equal(want.Digest):
		return nil, fmt.Errorf("Content-Digest %s does not match its entry (%s)", m.Digest, want.Digest)
	}
	var pin types.Digests
	if p == RootPath {
		pin = v.pin
	}
	if err := CheckPinnedBody(r.Body, want.Digest, pin, want.Length); err != nil {
		return nil, err
	}
	return r.Body, nil
}

// PackageDigest is how a package is identified (in a Keep's certificate):
// the root's SHA-256 in Content-Digest form or, if it has none, the one
// digest of VerificationSet. Only that digest is checked against the
// root's bytes: the other values a set names are the registry's word (a
// set may name another package's SHA-224 beside this one's SHA-512), so
// they are not part of the identity.
func PackageDigest(root types.Digests) string {
	return VerificationSet(root).String()
}

// CheckPin checks that the digest set d contains the pinned digest (no-op
// for an empty pin).
func CheckPin(pin, d types.Digests) error {
	for a, want := range pin {
		got, ok := d[a]
		if !ok {
			return fmt.Errorf("pinned digest %s:%x cannot be checked: the tag entry has no %s digest", a, want, a)
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("package digest mismatch: pinned %s:%x, but the tag entry names %s:%x", a, want, a, got)
		}
	}
	return nil
}

// VerificationSet returns the subset of d a body is hashed against. One
// strong algorithm binds the bytes (all algorithms of a set come from the
// same source, and set equality with the parent entry is checked
// separately), and hashing one instead of four keeps large packages at disk
// speed. Preference: sha-256, sha-512, sha-384, sha-224. A pin does not come
// from that source: where one applies, use PinnedVerificationSet.
func VerificationSet(d types.Digests) types.Digests {
	for _, a := range []types.Algorithm{types.SHA256, types.SHA512, types.SHA384, types.SHA224} {
		if v, ok := d[a]; ok {
			return types.Digests{a: v}
		}
	}
	return d
}

// PinnedVerificationSet returns the digests the body of a node named by d
// is hashed against when pin applies to it (the root node of a pinned
// package): VerificationSet(d) and the pin. The registry chooses what a tag
// entry names, so an entry may name the pinned value beside a SHA-256 of
// other bytes and still pass CheckPin; only hashing the body with the pin's
// algorithm too makes the pin a digest of the bytes. d must contain the
// pin. Without a pin it is VerificationSet(d).
func PinnedVerificationSet(d, pin types.Digests) (types.Digests, error) {
	vs := maps.Clone(VerificationSet(d))
	for a, want := range pin {
		if got, ok := d[a]; !ok || !bytes.Equal(got, want) {
			return nil, fmt.Errorf("content digest %s does not contain the pinned digest %s:%x", d, a, want)
		}
		vs[a] = want
	}
	return vs, nil
}

// CheckBody checks body has length bytes and matches d (VerificationSet).
func CheckBody(body []byte, d types.Digests, length int64) error {
	return CheckPinnedBody(body, d, nil, length)
}

// CheckPinnedBody is CheckBody for a body that pin (nil: none) applies to:
// it checks body against PinnedVerificationSet(d, pin), in one pass.
func CheckPinnedBody(body []byte, d, pin types.Digests, length int64) error {
	if int64(len(body)) != length {
		return fmt.Errorf("%w, expected: %d, got %d", types.ErrLengthMismatch, length, len(body))
	}
	vs, err := PinnedVerificationSet(d, pin)
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		return errors.New("no content digest to check")
	}
	algs := make([]types.Algorithm, 0, len(vs))
	for a := range vs {
		algs = append(algs, a)
	}
	h := types.NewHasher(algs...)
	h.Write(body)
	sum := h.Sum()
	if sum.Equal(vs) {
		return nil
	}
	for a, want := range pin {
		if !bytes.Equal(sum[a], want) {
			return fmt.Errorf("%w: the content does not hash to the pinned %s digest", types.ErrDigestMismatch, a)
		}
	}
	return types.ErrDigestMismatch
}
