package stewardtest

import (
	"encoding/asn1"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Object identifiers of the crafted requests.
var (
	oidRSA    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidPSS    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidMGF1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	oidSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
)

// CraftedRSARequest is a PKCS#10 request as an attacker makes one to burn
// a verifier's CPU: its key is an RSA modulus of exactly bits bits
// (2^(bits-1)+1, odd and no product of two primes: no real key is needed)
// with exponent 65537, its signature algorithm RSASSA-PSS with SHA-256,
// and its "signature" bits/8 bytes of 0x01, which only verifying shows to
// be wrong. Everything else is well-formed: version 0, an empty subject
// and no attributes.
func CraftedRSARequest(bits int) []byte {
	n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
	n.SetBit(n, 0, 1)
	var pub cryptobyte.Builder
	pub.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // RSAPublicKey
		b.AddASN1BigInt(n)
		b.AddASN1Int64(65537)
	})
	var tbs cryptobyte.Builder
	tbs.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(0)
		b.AddASN1(cbasn1.SEQUENCE, func(*cryptobyte.Builder) {}) // subject
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SubjectPublicKeyInfo
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidRSA)
				b.AddASN1NULL()
			})
			b.AddASN1BitString(pub.BytesOrPanic())
		})
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(*cryptobyte.Builder) {})
	})
	sha256ID := func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidSHA256)
			b.AddASN1NULL()
		})
	}
	sig := make([]byte, (bits+7)/8)
	for i := range sig {
		sig[i] = 1
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs.BytesOrPanic())
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // RSASSA-PSS, as crypto/x509 writes it
			b.AddASN1ObjectIdentifier(oidPSS)
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), sha256ID)
				b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(oidMGF1)
						sha256ID(b)
					})
				})
				b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
					b.AddASN1Int64(32)
				})
			})
		})
		b.AddASN1BitString(sig)
	})
	return b.BytesOrPanic()
}
