// Package tsm gets attestation reports through the Linux configfs-tsm
// interface (/sys/kernel/config/tsm/report), via github.com/google/go-configfs-tsm.
//
// It adds what a Keep needs on top of the library: a check that the report
// comes from the expected provider (a report from another TEE's provider is
// useless and confusing), bounded retries when another process races on the
// same report entry (the library detects this through the entry's
// "generation" attribute) or the kernel answers EBUSY, and context
// cancellation between attempts.
//
// Trust: the kernel's report provider. The returned blobs are hostile input
// for everyone downstream and are verified by the Steward.
package tsm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/linuxtsm"
	"github.com/google/go-configfs-tsm/report"
)

// Provider names as the kernel reports them in the "provider" attribute.
const (
	ProviderSNP = "sev_guest"
	ProviderTDX = "tdx_guest"
)

// ReportDir is the configfs-tsm report interface (Linux 6.7+).
const ReportDir = "/sys/kernel/config/tsm/report"

// ErrUnavailable means configfs-tsm is not usable on this machine (not
// mounted, no report subsystem, or no provider); callers fall back to the
// TEE's guest device.
var ErrUnavailable = errors.New("configfs-tsm report interface unavailable")

// ErrWrongProvider means configfs-tsm works but belongs to another TEE.
var ErrWrongProvider = errors.New("configfs-tsm report provider is not the expected TEE")

// Source fetches reports. The zero value uses the real kernel interface.
type Source struct {
	// Client is the configfs client; nil means the real
	// /sys/kernel/config/tsm (linuxtsm). Tests pass a faketsm client.
	Client configfsi.Client
	// Attempts bounds tries on generation races and EBUSY (default 5).
	Attempts int
	// Backoff is the first delay between attempts, doubled each time
	// (default 10ms).
	Backoff time.Duration
}

// Request is one report request.
type Request struct {
	// InBlob is the 64 bytes of report data (see attest.ReportData).
	InBlob [64]byte
	// Provider is the expected provider (ProviderSNP or ProviderTDX).
	Provider string
	// AuxBlob asks for the auxiliary blob (SNP: the certificate table with
	// the VCEK, when the host provisioned it).
	AuxBlob bool
	// Privilege, if non-nil, is the privilege level (SNP VMPL).
	Privilege *uint
}

// Response is a report fetched from the kernel.
type Response struct {
	Provider string
	OutBlob  []byte
	AuxBlob  []byte
}

func (s *Source) client() (configfsi.Client, error) {
	if s.Client != nil {
		return s.Client, nil
	}
	c, err := linuxtsm.MakeClient()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return c, nil
}

// Get fetches one report, retrying races. The provider is checked before the
// result is returned.
func (s *Source) Get(ctx context.Context, req Request) (*Response, error) {
	c, err := s.client()
	if err != nil {
		return nil, err
	}
	attempts := s.Attempts
	if attempts <= 0 {
		attempts = 5
	}
	delay := s.Backoff
	if delay <= 0 {
		delay = 10 * time.Millisecond
	}
	r := &report.Request{InBlob: req.InBlob[:], GetAuxBlob: req.AuxBlob}
	if req.Privilege != nil {
		r.Privilege = &report.Privilege{Level: *req.Privilege}
	}
	var lastErr error
	for i := 0; i < attempts; i++ {
		if i > 0 {
			// A select between a done context and an expired timer picks
			// either: look at the context first.
			if ctx.Err() == nil {
				select {
				case <-ctx.Done():
				case <-time.After(delay):
				}
			}
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("configfs-tsm report: %w (last error: %v)", err, lastErr)
			}
			delay *= 2
		}
		resp, err := getOnce(c, r)
		if err != nil && r.GetAuxBlob && strings.Contains(err.Error(), "auxblob") && !retryable(err) {
			// Kernels without auxblob support (or a host that provisioned no
			// certificates) fail the whole request; the caller gets an
			// empty AuxBlob and falls back to its collateral cache.
			r.GetAuxBlob = false
			resp, err = getOnce(c, r)
		}
		if err == nil {
			got := strings.TrimSpace(resp.Provider)
			if req.Provider != "" && got != req.Provider {
				return nil, fmt.Errorf("%w: got %q, want %q", ErrWrongProvider, got, req.Provider)
			}
			return &Response{Provider: got, OutBlob: resp.OutBlob, AuxBlob: resp.AuxBlob}, nil
		}
		if errors.Is(err, ErrUnavailable) {
			return nil, err
		}
		if !retryable(err) {
			return nil, fmt.Errorf("configfs-tsm report: %w", err)
		}
		lastErr = err
	}
	return nil, fmt.Errorf("configfs-tsm report: gave up after %d attempts racing with another user of the report entry: %w", attempts, lastErr)
}

// getOnce is report.Get, except that failing to create the report entry
// (no report subsystem) is ErrUnavailable.
func getOnce(c configfsi.Client, req *report.Request) (*report.Response, error) {
	r, err := report.Create(c, req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	resp, err := r.Get()
	if derr := r.Destroy(); err == nil && derr != nil {
		err = derr
	}
	return resp, err
}

// retryable reports whether err is a race on the report entry (another
// writer bumped the generation) or a busy kernel.
func retryable(err error) bool {
	return report.GetGenerationErr(err) != nil || errors.Is(err, syscall.EBUSY) ||
		errors.Is(err, syscall.EAGAIN) || strings.Contains(err.Error(), syscall.EBUSY.Error())
}

// ProviderName returns the provider of the configfs-tsm report subsystem, or
// ErrUnavailable. Used by platform probes and backend selection.
func (s *Source) ProviderName() (string, error) {
	c, err := s.client()
	if err != nil {
		return "", err
	}
	r, err := report.CreateOpenReport(c)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer r.Destroy()
	// Some implementations only expose attributes once the entry has an
	// inblob; writing zeros asks for nothing the kernel has to sign yet.
	if err := r.WriteOption("inblob", make([]byte, 64)); err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	p, err := r.ReadOption("provider")
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return strings.TrimSpace(string(p)), nil
}

// CheckProvider returns nil when fsys (a machine's root directory, paths
// without the leading slash) has the configfs-tsm report interface and its
// provider, as providerName reads it (normally (&Source{}).ProviderName;
// nil means it cannot be read), is want. The error says which part is
// missing. Backends use it for their availability and `enarx platform
// info` shows its error, so the two agree.
func CheckProvider(fsys fs.FS, want string, providerName func() (string, error)) error {
	if _, err := fs.Stat(fsys, strings.TrimPrefix(ReportDir, "/")); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s is missing", ErrUnavailable, ReportDir)
	} else if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrUnavailable, ReportDir, err)
	}
	if providerName == nil {
		return fmt.Errorf("%w: its provider cannot be read here", ErrUnavailable)
	}
	got, err := providerName()
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%w: it is %q, not %q", ErrWrongProvider, got, want)
	}
	return nil
}

// CheckGuest returns nil when fsys (a machine's root directory) offers the
// reports of the TEE whose configfs-tsm provider is want: its guest
// driver's device (the interface before configfs-tsm, e.g. /dev/sev-guest)
// exists, or CheckProvider passes. The error names both.
func CheckGuest(fsys fs.FS, device, want string, providerName func() (string, error)) error {
	if _, err := fs.Stat(fsys, strings.TrimPrefix(device, "/")); err == nil {
		return nil
	}
	if err := CheckProvider(fsys, want, providerName); err != nil {
		return fmt.Errorf("%s is missing and %w", device, err)
	}
	return nil
}
