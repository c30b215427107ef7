// Package signedjson splits the envelope Intel PCS wraps around its signed
// JSON collateral (TCB Info, QE Identity): {"<body>":{…},"signature":"<128
// hex>"}. It returns the exact bytes of the body value, which is what Intel
// signed (ECDSA P-256/SHA-256, r‖s), and the signature.
//
// It checks only the envelope's shape and size; it trusts nothing and
// verifies no signature.
package signedjson

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// Split decodes {"<field>":{…},"signature":"<128 hex>"} of at most maxSize
// bytes. The returned body is a copy of the field's value exactly as it
// appears in the input. Errors are prefixed with what, e.g. "tcb info".
func Split(body []byte, field string, maxSize int, what string) (raw []byte, sig [64]byte, err error) {
	if len(body) > maxSize {
		return nil, sig, fmt.Errorf("%s: %d bytes exceeds the %d-byte limit", what, len(body), maxSize)
	}
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(body, &outer); err != nil {
		return nil, sig, fmt.Errorf("%s: %w", what, err)
	}
	v := outer[field]
	if len(v) == 0 || bytes.Equal(v, []byte("null")) {
		return nil, sig, fmt.Errorf("%s: no %q object", what, field)
	}
	s, ok := outer["signature"]
	if !ok {
		return nil, sig, fmt.Errorf(`%s: no "signature"`, what)
	}
	var hexSig string
	if err := json.Unmarshal(s, &hexSig); err != nil {
		return nil, sig, fmt.Errorf("%s: signature is not a string: %w", what, err)
	}
	b, err := hex.DecodeString(hexSig)
	if err != nil || len(b) != len(sig) {
		return nil, sig, errors.New(what + ": signature is not 128 hex digits (ECDSA P-256 r‖s)")
	}
	copy(sig[:], b)
	return slices.Clone([]byte(v)), sig, nil
}
