// Package tcbinfo models Intel's SGX TCB Info, version 3 (the JSON body that
// Intel PCS API v4 returns from /sgx/certification/v4/tcb?fmspc=…), and picks
// the TCB level that applies to a platform.
//
// Parse only decodes and sanity-checks the document and keeps the exact
// bytes Intel signed; it verifies no signature (package attestation/sgx does,
// with the TCB Signing certificate) and trusts nothing in its input.
package tcbinfo

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/enarx-go/enarx/attestation/internal/signedjson"
)

// Limits that keep a hostile document cheap to handle. Intel's current
// documents are about 5 KiB with a dozen levels.
const (
	MaxSize   = 256 << 10
	MaxLevels = 256
	// Components is the number of SGX TCB component SVNs in a level and in
	// a PCK certificate.
	Components = 16
	// Version is the only TCB Info version this package accepts.
	Version = 3
)

// Status values of a TCB level (Intel PCS API v4).
const (
	StatusUpToDate                          = "UpToDate"
	StatusSWHardeningNeeded                 = "SWHardeningNeeded"
	StatusConfigurationNeeded               = "ConfigurationNeeded"
	StatusConfigurationAndSWHardeningNeeded = "ConfigurationAndSWHardeningNeeded"
	StatusOutOfDate                         = "OutOfDate"
	StatusOutOfDateConfigurationNeeded      = "OutOfDateConfigurationNeeded"
	StatusRevoked                           = "Revoked"
)

// Signed is a parsed TCB Info document with the bytes its signature covers.
type Signed struct {
	// Raw is the exact value of "tcbInfo" as it appears in the body; Intel's
	// ECDSA P-256/SHA-256 signature is over these bytes.
	Raw []byte
	// Signature is the signature as r‖s (32+32 bytes, big-endian).
	Signature [64]byte
	// Info is Raw decoded.
	Info Info
}

// Info is the "tcbInfo" object.
type Info struct {
	ID                      string    `json:"id"`
	Version                 int       `json:"version"`
	IssueDate               time.Time `json:"issueDate"`
	NextUpdate              time.Time `json:"nextUpdate"`
	FMSPC                   HexBytes  `json:"fmspc"`
	PCEID                   HexBytes  `json:"pceId"`
	TCBType                 int       `json:"tcbType"`
	TCBEvaluationDataNumber int       `json:"tcbEvaluationDataNumber"`
	// TCBLevels is sorted by TCBDate, newest first (Parse sorts stably, as
	// upstream does, so the first matching level is the newest one).
	TCBLevels []Level `json:"tcbLevels"`
}

// Level is one entry of tcbLevels.
type Level struct {
	TCB         TCB       `json:"tcb"`
	TCBDate     time.Time `json:"tcbDate"`
	TCBStatus   string    `json:"tcbStatus"`
	AdvisoryIDs []string  `json:"advisoryIDs,omitempty"`
}

// TCB is the SVN tuple of a level.
type TCB struct {
	SGXComponents []Component `json:"sgxtcbcomponents"`
	PCESVN        uint16      `json:"pcesvn"`
}

// Component is one SGX TCB component.
type Component struct {
	SVN      uint8  `json:"svn"`
	Category string `json:"category,omitempty"`
	Type     string `json:"type,omitempty"`
}

// HexBytes is a JSON hex string (either case).
type HexBytes []byte

// UnmarshalJSON decodes a hex string.
func (h *HexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	if err != nil {
		return fmt.Errorf("not a hex string: %w", err)
	}
	*h = v
	return nil
}

// String is upper-case hex, as Intel writes it.
func (h HexBytes) String() string { return strings.ToUpper(hex.EncodeToString(h)) }

// Parse decodes a TCB Info v3 body {"tcbInfo":{…},"signature":"<128 hex>"}.
//
// Unlike upstream, which slices body[11:len-144] and assumes no whitespace,
// it takes the signed bytes from the JSON value itself, and it rejects what
// would make upstream panic or silently misbehave: a level without exactly
// 16 components, a version other than 3, an id other than "SGX".
func Parse(body []byte) (*Signed, error) {
	raw, sig, err := signedjson.Split(body, "tcbInfo", MaxSize, "tcb info")
	if err != nil {
		return nil, err
	}
	s := &Signed{Raw: raw, Signature: sig}
	if err := json.Unmarshal(s.Raw, &s.Info); err != nil {
		return nil, fmt.Errorf("tcb info: tcbInfo: %w", err)
	}
	if err := s.Info.check(); err != nil {
		return nil, fmt.Errorf("tcb info: %w", err)
	}
	slices.SortStableFunc(s.Info.TCBLevels, func(a, b Level) int { return b.TCBDate.Compare(a.TCBDate) })
	return s, nil
}

func (i *Info) check() error {
	if i.ID != "SGX" {
		return fmt.Errorf("id %q is not SGX", i.ID)
	}
	if i.Version != Version {
		return fmt.Errorf("version %d is not %d", i.Version, Version)
	}
	if len(i.FMSPC) != 6 {
		return fmt.Errorf("fmspc is %d bytes, want 6", len(i.FMSPC))
	}
	if i.IssueDate.IsZero() || i.NextUpdate.IsZero() {
		return errors.New("issueDate and nextUpdate are required")
	}
	if len(i.TCBLevels) == 0 {
		return errors.New("no tcbLevels")
	}
	if len(i.TCBLevels) > MaxLevels {
		return fmt.Errorf("%d tcbLevels exceeds the limit of %d", len(i.TCBLevels), MaxLevels)
	}
	for n, l := range i.TCBLevels {
		if len(l.TCB.SGXComponents) != Components {
			return fmt.Errorf("tcbLevels[%d] has %d sgxtcbcomponents, want %d", n, len(l.TCB.SGXComponents), Components)
		}
		if l.TCBStatus == "" {
			return fmt.Errorf("tcbLevels[%d] has no tcbStatus", n)
		}
	}
	return nil
}

// ErrNoLevel means the platform's SVNs are below every level Intel lists.
var ErrNoLevel = errors.New("no TCB level matches the platform")

// Match returns the newest level whose 16 component SVNs are all ≤ the
// platform's (from the PCK certificate) and whose PCESVN is ≤ the
// platform's, like upstream and Intel's QVL for SGX.
func (i *Info) Match(cpusvn [Components]byte, pcesvn uint16) (*Level, error) {
	for n := range i.TCBLevels {
		l := &i.TCBLevels[n]
		if len(l.TCB.SGXComponents) != Components {
			continue
		}
		ok := pcesvn >= l.TCB.PCESVN
		for c := 0; ok && c < Components; c++ {
			ok = cpusvn[c] >= l.TCB.SGXComponents[c].SVN
		}
		if ok {
			return l, nil
		}
	}
	return nil, ErrNoLevel
}
