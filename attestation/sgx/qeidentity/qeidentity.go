// Package qeidentity models Intel's QE Identity, version 2 (the JSON body
// Intel PCS API v4 returns from /sgx/certification/v4/qe/identity): the
// expected identity of the Quoting Enclave (MRSIGNER, ISVPRODID, masked
// MISCSELECT and ATTRIBUTES) and the TCB status of each QE ISVSVN.
//
// Parse only decodes and sanity-checks the document and keeps the exact
// bytes Intel signed; it verifies no signature and trusts nothing.
package qeidentity

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/enarx-go/enarx/attestation/internal/signedjson"
	"github.com/enarx-go/enarx/attestation/sgx/tcbinfo"
)

// Limits and constants.
const (
	MaxSize   = 64 << 10
	MaxLevels = 256
	// Version is the only QE Identity version accepted.
	Version = 2
	// IDSGX is the id of the SGX Quoting Enclave's identity ("TD_QE" is
	// TDX's, which an SGX quote must not be checked against).
	IDSGX = "QE"
)

// Signed is a parsed QE Identity document with the bytes its signature covers.
type Signed struct {
	// Raw is the exact value of "enclaveIdentity", which Intel signs
	// (ECDSA P-256/SHA-256) with the TCB Signing key.
	Raw       []byte
	Signature [64]byte
	Identity  Identity
}

// Identity is the "enclaveIdentity" object.
type Identity struct {
	ID                      string           `json:"id"`
	Version                 int              `json:"version"`
	IssueDate               time.Time        `json:"issueDate"`
	NextUpdate              time.Time        `json:"nextUpdate"`
	TCBEvaluationDataNumber int              `json:"tcbEvaluationDataNumber"`
	MiscSelect              tcbinfo.HexBytes `json:"miscselect"`
	MiscSelectMask          tcbinfo.HexBytes `json:"miscselectMask"`
	// Attributes and AttributesMask are the 16-byte ATTRIBUTES (flags then
	// XFRM, little-endian) as they appear in the report.
	Attributes     tcbinfo.HexBytes `json:"attributes"`
	AttributesMask tcbinfo.HexBytes `json:"attributesMask"`
	MRSIGNER       tcbinfo.HexBytes `json:"mrsigner"`
	ISVProdID      uint16           `json:"isvprodid"`
	// TCBLevels is sorted by ISVSVN, highest first.
	TCBLevels []Level `json:"tcbLevels"`
}

// Level is one QE TCB level.
type Level struct {
	TCB struct {
		ISVSVN uint16 `json:"isvsvn"`
	} `json:"tcb"`
	TCBDate     time.Time `json:"tcbDate"`
	TCBStatus   string    `json:"tcbStatus"`
	AdvisoryIDs []string  `json:"advisoryIDs,omitempty"`
}

// Parse decodes {"enclaveIdentity":{…},"signature":"<128 hex>"}.
func Parse(body []byte) (*Signed, error) {
	raw, sig, err := signedjson.Split(body, "enclaveIdentity", MaxSize, "qe identity")
	if err != nil {
		return nil, err
	}
	s := &Signed{Raw: raw, Signature: sig}
	if err := json.Unmarshal(s.Raw, &s.Identity); err != nil {
		return nil, fmt.Errorf("qe identity: enclaveIdentity: %w", err)
	}
	if err := s.Identity.check(); err != nil {
		return nil, fmt.Errorf("qe identity: %w", err)
	}
	slices.SortStableFunc(s.Identity.TCBLevels, func(a, b Level) int { return int(b.TCB.ISVSVN) - int(a.TCB.ISVSVN) })
	return s, nil
}

func (i *Identity) check() error {
	switch {
	case i.ID != IDSGX:
		return fmt.Errorf("id %q is not %q", i.ID, IDSGX)
	case i.Version != Version:
		return fmt.Errorf("version %d is not %d", i.Version, Version)
	case i.IssueDate.IsZero() || i.NextUpdate.IsZero():
		return errors.New("issueDate and nextUpdate are required")
	case len(i.MiscSelect) != 4 || len(i.MiscSelectMask) != 4:
		return errors.New("miscselect and miscselectMask must be 4 bytes")
	case len(i.Attributes) != 16 || len(i.AttributesMask) != 16:
		return errors.New("attributes and attributesMask must be 16 bytes")
	case len(i.MRSIGNER) != 32:
		return errors.New("mrsigner must be 32 bytes")
	case len(i.TCBLevels) == 0:
		return errors.New("no tcbLevels")
	case len(i.TCBLevels) > MaxLevels:
		return fmt.Errorf("%d tcbLevels exceeds the limit of %d", len(i.TCBLevels), MaxLevels)
	}
	for n, l := range i.TCBLevels {
		if l.TCBStatus == "" {
			return fmt.Errorf("tcbLevels[%d] has no tcbStatus", n)
		}
	}
	return nil
}

// ErrNoLevel means the QE's ISVSVN is below every level.
var ErrNoLevel = errors.New("no QE TCB level matches the Quoting Enclave's ISVSVN")

// Match returns the highest level whose ISVSVN is ≤ isvsvn.
func (i *Identity) Match(isvsvn uint16) (*Level, error) {
	for n := range i.TCBLevels {
		if isvsvn >= i.TCBLevels[n].TCB.ISVSVN {
			return &i.TCBLevels[n], nil
		}
	}
	return nil, ErrNoLevel
}

// masked reports whether a&mask == b&mask over equal-length slices.
func masked(a, b, mask []byte) bool {
	if len(a) != len(mask) || len(b) != len(mask) {
		return false
	}
	for n := range mask {
		if a[n]&mask[n] != b[n]&mask[n] {
			return false
		}
	}
	return true
}

// MatchesMiscSelect compares a report's raw MISCSELECT (4 bytes,
// little-endian) under the mask.
func (i *Identity) MatchesMiscSelect(raw []byte) bool {
	return masked(raw, i.MiscSelect, i.MiscSelectMask)
}

// MatchesAttributes compares a report's raw ATTRIBUTES (16 bytes) under the mask.
func (i *Identity) MatchesAttributes(raw []byte) bool {
	return masked(raw, i.Attributes, i.AttributesMask)
}
