// Package seal is the cryptography of a sealed volume: the key hierarchy
// (HKDF-SHA256 from the volume's source key) and AES-256-GCM sealing and
// opening of chunks and of the manifest, with additional data that binds
// each ciphertext to its place (volume, file, chunk index; volume
// version). Layouts are package format's; what to accept is package
// sealed's.
//
// Keys:
//
//	volume   = HKDF(source key, salt "enarx sealed volume v1", info "volume" ‖ name)
//	manifest = HKDF(volume, info "manifest" ‖ volume id)
//	file     = HKDF(volume, info "file" ‖ volume id ‖ file id)
//
// The name is the volume's configured name, so two volumes sharing a
// source key (every volume of one SEV-SNP measurement does) have unrelated
// keys and one cannot be swapped for the other.
//
// Nonces are 96 random bits per sealing (crypto/rand), never a counter: a
// counter restored from the last commit after a crash would repeat nonces
// the host has already seen with other plaintexts. Per-file keys spread
// the chunks over many keys, but a key seals again at every commit that
// changes what it covers: the manifest key once per commit, for the
// volume's whole life; a file key once per rewrite of one of its chunks.
// Past 2^32 sealings under one key (1,000 commits a second for 50 days)
// the chance of a repeated nonce exceeds the 2^-32 of NIST SP 800-38D; a
// repeat gives away that key's GHASH key (forgeries) and the XOR of two
// plaintexts. A key per manifest version (and per sealing epoch of a
// file's chunks) would lift the bound; that is a format change.
//
// Trust: key material is never logged or put in errors. Open never
// returns plaintext whose tag did not verify.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/enarx-go/enarx/keep/internal/vfs/sealed/format"
)

// KeySize is the size of every key here.
const KeySize = 32

const volumeSalt = "enarx sealed volume v1"

// ErrAuth is returned when a ciphertext fails authentication.
var ErrAuth = errors.New("authentication failed")

// Volume holds a volume's key.
type Volume struct {
	key [KeySize]byte
}

// NewVolume derives the volume key of the volume called name from the
// source key (KeySize bytes).
func NewVolume(source []byte, name string) (*Volume, error) {
	if len(source) != KeySize {
		return nil, fmt.Errorf("volume key source gave %d bytes, want %d", len(source), KeySize)
	}
	k, err := hkdf.Key(sha256.New, source, []byte(volumeSalt), "volume\x00"+name, KeySize)
	if err != nil {
		return nil, fmt.Errorf("deriving the volume key: %w", err)
	}
	v := &Volume{}
	copy(v.key[:], k)
	clear(k)
	return v, nil
}

func (v *Volume) aead(info string) (cipher.AEAD, error) {
	k, err := hkdf.Expand(sha256.New, v.key[:], info, KeySize)
	if err != nil {
		return nil, err
	}
	defer clear(k)
	b, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// Manifest returns the AEAD of the manifest of volume id.
func (v *Volume) Manifest(id format.ID) (*Manifest, error) {
	a, err := v.aead("manifest\x00" + string(id[:]))
	if err != nil {
		return nil, fmt.Errorf("deriving the manifest key: %w", err)
	}
	return &Manifest{aead: a}, nil
}

// File returns the AEAD of file fid's chunks in volume vid.
func (v *Volume) File(vid, fid format.ID) (*File, error) {
	a, err := v.aead("file\x00" + string(vid[:]) + string(fid[:]))
	if err != nil {
		return nil, fmt.Errorf("deriving a file key: %w", err)
	}
	f := &File{aead: a}
	copy(f.aad[:format.IDSize], vid[:])
	copy(f.aad[format.IDSize:], fid[:])
	return f, nil
}

// Manifest seals and opens manifests of one volume.
type Manifest struct {
	aead cipher.AEAD
}

// Seal returns the manifest object for body at h.VolumeID and h.Version
// (h.Nonce is chosen here).
func (m *Manifest) Seal(h format.Header, body *format.Body) []byte {
	rand.Read(h.Nonce[:])
	out := make([]byte, 0, format.HeaderSize+body.Size()+format.TagSize)
	out = h.Append(out)
	aad := out[:format.HeaderSize]
	plain := body.Append(out[format.HeaderSize:])
	sealed := m.aead.Seal(plain[:0], h.Nonce[:], plain, aad)
	return out[:format.HeaderSize+len(sealed)]
}

// Open authenticates and decodes a manifest object whose header h was
// parsed with format.ParseHeader (sealed is the rest). It returns
// ErrAuth unless the object was sealed with this key for exactly h's
// volume id and version; body's shape is checked by format.ParseBody.
// The returned body aliases obj.
func (m *Manifest) Open(obj []byte) (format.Header, *format.Body, error) {
	h, sealed, err := format.ParseHeader(obj)
	if err != nil {
		return h, nil, err
	}
	plain, err := m.aead.Open(sealed[:0], h.Nonce[:], sealed, obj[:format.HeaderSize])
	if err != nil {
		return h, nil, ErrAuth
	}
	body, err := format.ParseBody(plain)
	if err != nil {
		// Authentic but malformed: a bug of the writer, not the host.
		return h, nil, err
	}
	return h, body, nil
}

// File seals and opens one file's chunks.
type File struct {
	aead cipher.AEAD
	aad  [2*format.IDSize + 4]byte
}

// SealChunk encrypts plain (chunk index) into dst[:len(plain)] (dst may
// be plain; with TagSize bytes of capacity past len(plain) it is not
// reallocated) and returns the ciphertext without its tag, and the nonce
// and tag to record.
func (f *File) SealChunk(dst, plain []byte, index uint32) (ct []byte, nonce [format.NonceSize]byte, tag [format.TagSize]byte) {
	rand.Read(nonce[:])
	aad := f.aad
	binary.BigEndian.PutUint32(aad[2*format.IDSize:], index)
	out := f.aead.Seal(dst[:0], nonce[:], plain, aad[:])
	copy(tag[:], out[len(plain):])
	return out[:len(plain)], nonce, tag
}

// OpenChunk authenticates and decrypts ct (the slot's ciphertext, tag
// excluded) of chunk index with the recorded nonce and tag into
// dst[:len(ct)]. ct needs TagSize bytes of capacity past its length
// (the tag is placed there); dst may be ct[:0]. On failure dst may have
// held unauthenticated plaintext (then cleared): decrypt into memory
// only this Keep reads.
func (f *File) OpenChunk(dst, ct []byte, index uint32, nonce [format.NonceSize]byte, tag [format.TagSize]byte) ([]byte, error) {
	aad := f.aad
	binary.BigEndian.PutUint32(aad[2*format.IDSize:], index)
	full := append(ct, tag[:]...)
	out, err := f.aead.Open(dst[:0], nonce[:], full, aad[:])
	if err != nil {
		return nil, ErrAuth
	}
	return out, nil
}
