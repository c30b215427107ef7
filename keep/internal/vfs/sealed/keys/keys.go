// Package keys holds the sources of a sealed volume's key: where the 32
// bytes that package seal derives every volume key from come from.
//
//   - Static ("file:" in Enarx.toml): bytes the host read from a key file
//     and passed to the Keep (keep.Options.VolumeKeys). The host knows
//     them, so a sealed volume keyed this way protects against nobody who
//     controls the host: development only, and the source says so in the
//     log once.
//   - SNP ("snp"): a key the AMD security processor derives (SEV-SNP
//     MSG_KEY_REQ through /dev/sev-guest) from the chip's VCEK, the
//     launch measurement and the guest policy, mixed with a workload
//     binding. Only a guest with the same measurement on the same chip
//     gets it; see SNP for what that does and does not mean.
//
// Source is an interface so that a remote key-release service (a key
// broker that releases a key against an attestation) can be added later
// without touching the volume code.
//
// Trust: a source's bytes are secret; nothing here logs them or puts them
// in an error.
package keys

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/google/go-sev-guest/client"
)

// Size is the length of a source key.
const Size = 32

// Source gives the key of a sealed volume.
type Source interface {
	// Key returns Size bytes for the volume called volume (the
	// Enarx.toml entry's name). It may block on a device or the network
	// until ctx is done.
	Key(ctx context.Context, volume string) ([]byte, error)
	// String says what the source is, for logs (never the key).
	String() string
}

// Static is a key given as bytes: the development "file:" source.
type Static struct {
	key    []byte
	label  string
	logger *slog.Logger
	once   sync.Once
}

// NewStatic returns the development source of key (Size bytes), labelled
// label in logs (e.g. the "file:/path" spec). logger nil means
// slog.Default.
func NewStatic(key []byte, label string, logger *slog.Logger) (*Static, error) {
	if len(key) != Size {
		return nil, fmt.Errorf("sealed volume key %s is %d bytes, want exactly %d (e.g. head -c 32 /dev/urandom > key)", label, len(key), Size)
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Static{key: append([]byte(nil), key...), label: label, logger: logger}, nil
}

// Key implements Source. The first call logs a warning: the host knows
// this key.
func (s *Static) Key(ctx context.Context, volume string) ([]byte, error) {
	s.once.Do(func() {
		s.logger.Warn("sealed volume key comes from a host file: development only, the host can read and forge this volume", "key", s.label, "volume", volume)
	})
	return append([]byte(nil), s.key...), nil
}

func (s *Static) String() string { return "file key " + s.label + " (development only)" }

// SNP is the SEV-SNP derived-key source.
//
// The key is MSG_KEY_REQ's with ROOT_KEY_SELECT = VCEK (an Enarx Keep has
// no migration agent, so there is no VMRK), GUEST_FIELD_SELECT =
// measurement and guest policy, VMPL 0, then HKDF-SHA256 with Binding.
// Consequences, documented for the operator:
//   - the volume opens only on the same chip (the VCEK is per chip):
//     moving a volume to another machine makes it unreadable;
//   - any guest launched with the same measurement and policy on that
//     chip derives the same chip key. The launch measurement of a Keep
//     covers the Keep, not the workload, so Binding must name the
//     workload (its module digest): without it every workload in this
//     version of the Keep could open the volume;
//   - a new Keep version (new measurement) or a new workload binding
//     derives a different key: data must be exported before an upgrade;
//   - the TCB version is not mixed in, so a firmware update does not lock
//     the data out, and an older firmware derives the same key.
type SNP struct {
	// Binding is mixed into the key: the workload's identity.
	Binding []byte
	// OpenDevice opens /dev/sev-guest; nil uses go-sev-guest's
	// client.OpenDevice. Tests pass a fake.
	OpenDevice func() (client.Device, error)
}

// snpFields is the guest field selection of the request.
var snpFields = client.GuestFieldSelect{Measurement: true, GuestPolicy: true}

// Key implements Source.
func (s *SNP) Key(ctx context.Context, volume string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	open := s.OpenDevice
	if open == nil {
		open = func() (client.Device, error) { return client.OpenDevice() }
	}
	d, err := open()
	if err != nil {
		return nil, fmt.Errorf("sealed volume %q: SEV-SNP derived key: opening the sev-guest device (is this an SEV-SNP guest?): %w", volume, err)
	}
	defer d.Close()
	resp, err := client.GetDerivedKeyAcknowledgingItsLimitations(d, &client.SnpDerivedKeyReq{
		UseVCEK:          true,
		GuestFieldSelect: snpFields,
	})
	if err != nil {
		return nil, fmt.Errorf("sealed volume %q: SEV-SNP MSG_KEY_REQ: %w", volume, err)
	}
	if resp.Status != 0 {
		return nil, fmt.Errorf("sealed volume %q: SEV-SNP MSG_KEY_REQ failed with status %#x", volume, resp.Status)
	}
	chip := resp.Data
	defer clear(chip[:])
	if chip == [32]byte{} {
		return nil, errors.New("sealed volume: SEV-SNP MSG_KEY_REQ returned an all-zero key")
	}
	k, err := hkdf.Key(sha256.New, chip[:], []byte("enarx sealed snp v1"), "binding\x00"+string(s.Binding), Size)
	if err != nil {
		return nil, fmt.Errorf("sealed volume %q: deriving from the SEV-SNP key: %w", volume, err)
	}
	return k, nil
}

func (s *SNP) String() string { return "SEV-SNP derived key (VCEK, measurement, policy)" }

// Spec kinds for Enarx.toml's key field.
const (
	SpecFile = "file:"
	SpecSNP  = "snp"
)

// FromSpec returns the source an Enarx.toml key spec names: for
// "file:PATH", the bytes the host read from PATH, passed to the Keep in
// hostKeys[spec] (keep.Options.VolumeKeys); for "snp", the SEV-SNP
// derived key mixed with binding (the workload's identity, see SNP).
func FromSpec(spec string, hostKeys map[string][]byte, binding []byte, logger *slog.Logger) (Source, error) {
	_, snp, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	if snp {
		return &SNP{Binding: binding}, nil
	}
	k, ok := hostKeys[spec]
	if !ok {
		return nil, fmt.Errorf("sealed volume key %q: the host passed no key for it", spec)
	}
	return NewStatic(k, spec, logger)
}

// ParseSpec checks an Enarx.toml key spec and says whether it names a
// host file (the path) or the SNP source.
func ParseSpec(spec string) (file string, snp bool, err error) {
	switch {
	case spec == SpecSNP:
		return "", true, nil
	case strings.HasPrefix(spec, SpecFile) && len(spec) > len(SpecFile):
		return spec[len(SpecFile):], false, nil
	}
	return "", false, fmt.Errorf("sealed volume key %q: want %q or %q", spec, SpecFile+"/path/to/32-byte-key", SpecSNP)
}
