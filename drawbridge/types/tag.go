package types

import (
	"errors"
	"fmt"

	"github.com/go-jose/go-jose/v4"
)

// signedTagAlgorithms are the JWS algorithms a signed tag may name. Nothing
// verifies the signature yet (no key or policy is defined upstream); the
// list only bounds what the JWS parser accepts.
var signedTagAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// ParseTag parses a tag body of the given Content-Type and returns the root
// entry it names. Unsigned tags (EntryType) are a TreeEntry. Signed tags
// (JWSType, JWS JSON serialization) must carry an attached payload that is a
// TreeEntry; the signature is NOT verified here.
func ParseTag(contentType string, body []byte) (Entry, error) {
	switch contentType {
	case EntryType:
		return ParseEntry(body)
	case JWSType:
		jws, err := jose.ParseSignedJSON(string(body), signedTagAlgorithms)
		if err != nil {
			return Entry{}, fmt.Errorf("signed tag: %w", err)
		}
		payload := jws.UnsafePayloadWithoutVerification()
		if len(payload) == 0 {
			return Entry{}, errors.New("signed tag: detached payloads are not supported")
		}
		e, err := ParseEntry(payload)
		if err != nil {
			return Entry{}, fmt.Errorf("signed tag payload: %w", err)
		}
		return e, nil
	}
	return Entry{}, fmt.Errorf("invalid tag content type %q (want %s or %s)", contentType, EntryType, JWSType)
}
