// Package seal is the cryptography of a sealed volume: the key hierarchy
// (HKDF-SHA256 from the volume's source key) and the AEAD sealing and
// opening of chunks and of the manifest, with additional data that binds
// each ciphertext to its place (volume, file, chunk index; the manifest
// header: format, volume id, volume version). Layouts are package
// format's; what to accept is package sealed's.
//
// Keys, per format version F (1 or 2):
//
//	volume   = HKDF(source key, salt "enarx sealed volume vF", info "volume" ‖ name)
//	manifest = HKDF(volume, info "manifest" ‖ volume id)
//	file     = HKDF(volume, info "file" ‖ volume id ‖ file id)
//
// The name is the volume's configured name, so two volumes sharing a
// source key (every volume of one SEV-SNP measurement does) have unrelated
// keys and one cannot be swapped for the other. The salt names the
// format, so a key of one format is never used with the other's cipher,
// and a manifest or chunk of one format does not open under the other's
// keys: the format field of the header (additional data) cannot be
// rewritten either way (a downgrade) without failing authentication.
//
// Ciphers and nonces: every sealing (a manifest body, a chunk) takes a
// fresh random nonce (crypto/rand), never a counter: a counter restored
// from the last commit after a crash would repeat nonces the host has
// already seen with other plaintexts. A key seals again at every commit
// that changes what it covers: the manifest key once per commit, for the
// volume's whole life; a file key once per rewrite of one of its chunks.
//
//   - Format 2 (every new volume): XChaCha20-Poly1305, 192-bit nonces.
//     After n sealings under one key the chance of any repeated nonce is
//     below n²/2^193: 2^-65 after 2^64 sealings (a million commits a
//     second for 500,000 years), and the 2^-32 that NIST SP 800-38D
//     allows is reached only past 2^80. No count needs tracking.
//   - Format 1 (volumes created before format 2, still read and written
//     so): AES-256-GCM, 96-bit nonces. Past 2^32 sealings under one key
//     (1,000 commits a second for 50 days) the chance of a repeated nonce
//     exceeds the 2^-32 of NIST SP 800-38D; a repeat gives away that
//     key's GHASH key (forgeries) and the XOR of two plaintexts. Such a
//     volume keeps that bound: move its data to a new (format 2) volume
//     to lift it.
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

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/enarx-go/enarx/keep/internal/vfs/sealed/format"
)

// KeySize is the size of every key here.
const KeySize = 32

// volumeSalt is the HKDF salt of a volume key of format f.
func volumeSalt(f format.Format) string { return fmt.Sprintf("enarx sealed volume v%d", f) }

// ErrAuth is returned when a ciphertext fails authentication.
var ErrAuth = errors.New("authentication failed")

// Volume holds a volume's key, for one format.
type Volume struct {
	key    [KeySize]byte
	format format.Format
}

// NewVolume derives the format f volume key of the volume called name
// from the source key (KeySize bytes).
func NewVolume(source []byte, name string, f format.Format) (*Volume, error) {
	if len(source) != KeySize {
		return nil, fmt.Errorf("volume key source gave %d bytes, want %d", len(source), KeySize)
	}
	if !f.Valid() {
		return nil, fmt.Errorf("no keys for %w %d", format.ErrUnknownFormat, f)
	}
	k, err := hkdf.Key(sha256.New, source, []byte(volumeSalt(f)), "volume\x00"+name, KeySize)
	if err != nil {
		return nil, fmt.Errorf("deriving the volume key: %w", err)
	}
	v := &Volume{format: f}
	copy(v.key[:], k)
	clear(k)
	return v, nil
}

// Format is the format the keys are for.
func (v *Volume) Format() format.Format { return v.format }

func (v *Volume) aead(info string) (cipher.AEAD, error) {
	k, err := hkdf.Expand(sha256.New, v.key[:], info, KeySize)
	if err != nil {
		return nil, err
	}
	defer clear(k)
	var a cipher.AEAD
	switch v.format {
	case format.V1:
		b, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		a, err = cipher.NewGCM(b)
		if err != nil {
			return nil, err
		}
	case format.V2:
		a, err = chacha20poly1305.NewX(k)
		if err != nil {
			return nil, err
		}
	}
	if a == nil || a.NonceSize() != v.format.NonceSize() || a.Overhead() != format.TagSize {
		return nil, fmt.Errorf("format %d: no AEAD with its nonce and tag sizes", v.format)
	}
	return a, nil
}

// Manifest returns the AEAD of the manifest of volume id.
func (v *Volume) Manifest(id format.ID) (*Manifest, error) {
	a, err := v.aead("manifest\x00" + string(id[:]))
	if err != nil {
		return nil, fmt.Errorf("deriving the manifest key: %w", err)
	}
	return &Manifest{aead: a, format: v.format}, nil
}

// File returns the AEAD of file fid's chunks in volume vid.
func (v *Volume) File(vid, fid format.ID) (*File, error) {
	a, err := v.aead("file\x00" + string(vid[:]) + string(fid[:]))
	if err != nil {
		return nil, fmt.Errorf("deriving a file key: %w", err)
	}
	f := &File{aead: a, nonceSize: v.format.NonceSize()}
	copy(f.aad[:format.IDSize], vid[:])
	copy(f.aad[format.IDSize:], fid[:])
	return f, nil
}

// Manifest seals and opens manifests of one volume.
type Manifest struct {
	aead   cipher.AEAD
	format format.Format
}

// Seal returns the manifest object for body at h.VolumeID and h.Version
// (h.Format is the key's and h.Nonce is chosen here).
func (m *Manifest) Seal(h format.Header, body *format.Body) []byte {
	h.Format = m.format
	h.Nonce = [format.MaxNonceSize]byte{}
	nonce := h.Nonce[:m.format.NonceSize()]
	rand.Read(nonce)
	hs := m.format.HeaderSize()
	out := make([]byte, 0, hs+body.Size(m.format)+format.TagSize)
	out = h.Append(out)
	aad := out[:hs]
	plain := body.Append(out[hs:], m.format)
	sealed := m.aead.Seal(plain[:0], nonce, plain, aad)
	return out[:hs+len(sealed)]
}

// Open authenticates and decodes a manifest object (its header parsed
// with format.ParseHeader, the rest sealed). It returns ErrAuth unless
// the object was sealed with this key for exactly its header's format,
// volume id and version; body's shape is checked by format.ParseBody.
// The returned body aliases obj.
func (m *Manifest) Open(obj []byte) (format.Header, *format.Body, error) {
	h, sealed, err := format.ParseHeader(obj)
	if err != nil {
		return h, nil, err
	}
	if h.Format != m.format {
		// Sealed under the other format's keys, if at all: they are
		// unrelated to these (see the package comment), and the nonce
		// would not fit this cipher.
		return h, nil, ErrAuth
	}
	plain, err := m.aead.Open(sealed[:0], h.Nonce[:m.format.NonceSize()], sealed, obj[:m.format.HeaderSize()])
	if err != nil {
		return h, nil, ErrAuth
	}
	body, err := format.ParseBody(plain, m.format)
	if err != nil {
		// Authentic but malformed: a bug of the writer, not the host.
		return h, nil, err
	}
	return h, body, nil
}

// File seals and opens one file's chunks.
type File struct {
	aead      cipher.AEAD
	nonceSize int
	aad       [2*format.IDSize + 4]byte
}

// SealChunk encrypts plain (chunk index) into dst[:len(plain)] (dst may
// be plain; with TagSize bytes of capacity past len(plain) it is not
// reallocated) and returns the ciphertext without its tag, and the nonce
// (in its first NonceSize bytes of the key's format, the rest zero) and
// tag to record.
func (f *File) SealChunk(dst, plain []byte, index uint32) (ct []byte, nonce [format.MaxNonceSize]byte, tag [format.TagSize]byte) {
	rand.Read(nonce[:f.nonceSize])
	aad := f.aad
	binary.BigEndian.PutUint32(aad[2*format.IDSize:], index)
	out := f.aead.Seal(dst[:0], nonce[:f.nonceSize], plain, aad[:])
	copy(tag[:], out[len(plain):])
	return out[:len(plain)], nonce, tag
}

// OpenChunk authenticates and decrypts ct (the slot's ciphertext, tag
// excluded) of chunk index with the recorded nonce and tag into
// dst[:len(ct)]. ct needs TagSize bytes of capacity past its length
// (the tag is placed there); dst may be ct[:0]. On failure dst may have
// held unauthenticated plaintext (then cleared): decrypt into memory
// only this Keep reads.
func (f *File) OpenChunk(dst, ct []byte, index uint32, nonce [format.MaxNonceSize]byte, tag [format.TagSize]byte) ([]byte, error) {
	aad := f.aad
	binary.BigEndian.PutUint32(aad[2*format.IDSize:], index)
	full := append(ct, tag[:]...)
	out, err := f.aead.Open(dst[:0], nonce[:f.nonceSize], full, aad[:])
	if err != nil {
		return nil, ErrAuth
	}
	return out, nil
}
