// Package signedjson splits the envelope Intel PCS wraps around its signed
// JSON collateral (TCB Info, QE Identity; SGX and TDX alike):
// {"<body>":{…},"signature":"<128 hex>"}. It returns the exact bytes of the
// body value, which is what Intel signed (ECDSA P-256/SHA-256, r‖s), and
// the signature.
//
// The envelope must have exactly those two members, each once, under
// exactly those names. encoding/json matches struct fields by name
// case-insensitively and lets a later duplicate override an earlier one,
// so a document with, say, a "tcbInfo" and a "TCBINFO" member would show a
// map lookup (and so a signature check) one body and a struct decode of
// the whole document another: a forged body under a genuine signature.
// Callers decode only the returned body, never the whole document.
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
	"io"
	"slices"
)

// Split decodes {"<field>":{…},"signature":"<128 hex>"} of at most maxSize
// bytes. The returned body is a copy of the field's value exactly as it
// appears in the input. Errors are prefixed with what, e.g. "tcb info".
func Split(body []byte, field string, maxSize int, what string) (raw []byte, sig [64]byte, err error) {
	if len(body) > maxSize {
		return nil, sig, fmt.Errorf("%s: %d bytes exceeds the %d-byte limit", what, len(body), maxSize)
	}
	outer, err := members(body)
	if err != nil {
		return nil, sig, fmt.Errorf("%s: %w", what, err)
	}
	for name := range outer {
		if name != field && name != "signature" {
			return nil, sig, fmt.Errorf("%s: unexpected member %q (the envelope holds only %q and \"signature\")", what, name, field)
		}
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

// members decodes a JSON object's members, refusing a name that occurs
// twice.
func members(body []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	token := func() (json.Token, error) {
		t, err := dec.Token()
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return t, err
	}
	if t, err := token(); err != nil {
		return nil, err
	} else if t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		t, err := token()
		if err != nil {
			return nil, err
		}
		name, ok := t.(string)
		if !ok { // the decoder allows only strings here; be sure
			return nil, fmt.Errorf("member name %v is not a string", t)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("member %q occurs twice", name)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		out[name] = v
	}
	if _, err := token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return out, nil
}
