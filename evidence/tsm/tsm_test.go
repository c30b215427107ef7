package tsm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/faketsm"
)

// fakeKernel is a faked configfs-tsm report subsystem whose outblob is a
// function of the inblob, with knobs for the failure modes real kernels show.
type fakeKernel struct {
	provider   string
	aux        []byte // nil: no auxblob attribute
	races      int    // how many reads of outblob see a concurrent writer
	busyWrites int    // how many inblob writes answer EBUSY
	reads      int
}

func (k *fakeKernel) client() configfsi.Client {
	sub := faketsm.ReportV7(0)
	check := sub.CheckInAttr
	sub.CheckInAttr = func(e *faketsm.ReportEntry, attr string, contents []byte) error {
		if attr == "inblob" && k.busyWrites > 0 {
			k.busyWrites--
			return syscall.EBUSY
		}
		return check(e, attr, contents)
	}
	sub.ReadAttr = func(e *faketsm.ReportEntry, attr string) ([]byte, error) {
		switch attr {
		case "provider":
			return []byte(k.provider + "\n"), nil
		case "auxblob":
			if k.aux == nil {
				return nil, os.ErrNotExist
			}
			return k.aux, nil
		case "outblob":
			k.reads++
			if k.races > 0 {
				k.races--
				// Another process writes inblob while we read.
				e.WriteGeneration++
				e.ReadGeneration++
			}
			return append([]byte("report:"), e.InAttrs["inblob"].Value...), nil
		}
		return nil, os.ErrNotExist
	}
	return &faketsm.Client{Subsystems: map[string]configfsi.Client{"report": sub}}
}

func inblob() [64]byte {
	var b [64]byte
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func TestGetSuccessWithAuxBlob(t *testing.T) {
	k := &fakeKernel{provider: ProviderSNP, aux: []byte("certs")}
	s := &Source{Client: k.client()}
	in := inblob()
	resp, err := s.Get(context.Background(), Request{InBlob: in, Provider: ProviderSNP, AuxBlob: true})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(resp.OutBlob, append([]byte("report:"), in[:]...)) {
		t.Fatalf("outblob does not carry the inblob: %q", resp.OutBlob)
	}
	if string(resp.AuxBlob) != "certs" || resp.Provider != ProviderSNP {
		t.Fatalf("got aux %q provider %q", resp.AuxBlob, resp.Provider)
	}
}

func TestGetRetriesGenerationRace(t *testing.T) {
	k := &fakeKernel{provider: ProviderTDX, races: 2}
	s := &Source{Client: k.client(), Backoff: 1}
	if _, err := s.Get(context.Background(), Request{InBlob: inblob(), Provider: ProviderTDX}); err != nil {
		t.Fatal(err)
	}
	if k.reads != 3 {
		t.Fatalf("expected 3 outblob reads (2 raced), got %d", k.reads)
	}
}

func TestGetGivesUpOnPersistentRace(t *testing.T) {
	k := &fakeKernel{provider: ProviderTDX, races: 100}
	s := &Source{Client: k.client(), Attempts: 3, Backoff: 1}
	_, err := s.Get(context.Background(), Request{InBlob: inblob(), Provider: ProviderTDX})
	if err == nil || !strings.Contains(err.Error(), "gave up after 3 attempts") {
		t.Fatalf("want give-up error, got %v", err)
	}
}

func TestGetRetriesBusy(t *testing.T) {
	k := &fakeKernel{provider: ProviderSNP, busyWrites: 2}
	s := &Source{Client: k.client(), Backoff: 1}
	if _, err := s.Get(context.Background(), Request{InBlob: inblob(), Provider: ProviderSNP}); err != nil {
		t.Fatal(err)
	}
}

func TestGetWrongProvider(t *testing.T) {
	k := &fakeKernel{provider: ProviderTDX}
	s := &Source{Client: k.client()}
	_, err := s.Get(context.Background(), Request{InBlob: inblob(), Provider: ProviderSNP})
	if !errors.Is(err, ErrWrongProvider) {
		t.Fatalf("want ErrWrongProvider, got %v", err)
	}
}

func TestGetMissingAuxBlobFallsBack(t *testing.T) {
	k := &fakeKernel{provider: ProviderSNP}
	s := &Source{Client: k.client()}
	resp, err := s.Get(context.Background(), Request{InBlob: inblob(), Provider: ProviderSNP, AuxBlob: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.AuxBlob) != 0 || len(resp.OutBlob) == 0 {
		t.Fatalf("want report without auxblob, got aux %q out %d bytes", resp.AuxBlob, len(resp.OutBlob))
	}
}

func TestGetCancelled(t *testing.T) {
	k := &fakeKernel{provider: ProviderSNP, races: 100}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := &Source{Client: k.client(), Backoff: 1}
	_, err := s.Get(ctx, Request{InBlob: inblob(), Provider: ProviderSNP})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
}

func TestProviderName(t *testing.T) {
	for _, p := range []string{ProviderSNP, ProviderTDX} {
		k := &fakeKernel{provider: p}
		got, err := (&Source{Client: k.client()}).ProviderName()
		if err != nil || got != p {
			t.Fatalf("ProviderName = %q, %v; want %q", got, err, p)
		}
	}
}

func ExampleSource_Get() {
	k := &fakeKernel{provider: ProviderSNP}
	resp, err := (&Source{Client: k.client()}).Get(context.Background(), Request{Provider: ProviderSNP})
	fmt.Println(len(resp.OutBlob), err)
	// Output: 71 <nil>
}

func TestCheckProvider(t *testing.T) {
	withTSM := fstest.MapFS{"sys/kernel/config/tsm/report": {Mode: fs.ModeDir | 0o755}}
	snp := (&Source{Client: (&fakeKernel{provider: ProviderSNP}).client()}).ProviderName
	tdx := (&Source{Client: (&fakeKernel{provider: ProviderTDX}).client()}).ProviderName
	broken := func() (string, error) { return "", fmt.Errorf("%w: mkdir: permission denied", ErrUnavailable) }
	for _, c := range []struct {
		name     string
		fsys     fs.FS
		provider func() (string, error)
		want     error // nil, ErrUnavailable or ErrWrongProvider
		mesg     string
	}{
		{"SNP", withTSM, snp, nil, ""},
		{"NoConfigfs", fstest.MapFS{}, snp, ErrUnavailable, ReportDir + " is missing"},
		{"OtherTEE", withTSM, tdx, ErrWrongProvider, `it is "tdx_guest", not "sev_guest"`},
		{"Unreadable", withTSM, broken, ErrUnavailable, "permission denied"},
		{"NoReader", withTSM, nil, ErrUnavailable, "cannot be read"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := CheckProvider(c.fsys, ProviderSNP, c.provider)
			if c.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.mesg) {
				t.Fatalf("CheckProvider = %v, want %v with %q", err, c.want, c.mesg)
			}
		})
	}
}

func TestCheckGuest(t *testing.T) {
	dev := fstest.MapFS{"dev/sev-guest": {Mode: fs.ModeDevice | fs.ModeCharDevice}}
	if err := CheckGuest(dev, "/dev/sev-guest", ProviderSNP, nil); err != nil {
		t.Errorf("with the guest device: %v", err)
	}
	err := CheckGuest(fstest.MapFS{}, "/dev/sev-guest", ProviderSNP, nil)
	if !errors.Is(err, ErrUnavailable) || !strings.HasPrefix(err.Error(), "/dev/sev-guest is missing and configfs-tsm") {
		t.Errorf("with nothing: %v", err)
	}
}
