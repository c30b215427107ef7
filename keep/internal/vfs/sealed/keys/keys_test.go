package keys

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/client"
	labi "github.com/google/go-sev-guest/client/linuxabi"
	sgtest "github.com/google/go-sev-guest/testing"
)

func TestStatic(t *testing.T) {
	if _, err := NewStatic(make([]byte, 31), "file:k", nil); err == nil {
		t.Fatal("accepted a 31-byte key")
	}
	k := bytes.Repeat([]byte{7}, Size)
	s, err := NewStatic(k, "file:k", nil)
	if err != nil {
		t.Fatal(err)
	}
	k[0] = 0 // the source keeps its own copy
	got, err := s.Key(context.Background(), "v")
	if err != nil || !bytes.Equal(got, bytes.Repeat([]byte{7}, Size)) {
		t.Fatalf("key: %x, %v", got, err)
	}
	got[1] = 0 // and hands out copies
	if again, _ := s.Key(context.Background(), "v"); again[1] != 7 {
		t.Fatal("the source's key was changed through a returned slice")
	}
	if !strings.Contains(s.String(), "development only") || strings.Contains(s.String(), "\x07") {
		t.Fatalf("String() = %q", s.String())
	}
}

// snpRequest is the MSG_KEY_REQ the SNP source sends: VCEK (root key
// select 0), measurement and policy (field select 0b1001), VMPL 0, no
// SVN or TCB.
var snpRequest = sgtest.DerivedKeyRequestToString(&labi.SnpDerivedKeyReqABI{RootKeySelect: 0, GuestFieldSelect: 0b1001})

func fakeDevice(key []byte) func() (client.Device, error) {
	return func() (client.Device, error) {
		return &sgtest.Device{Keys: map[string][]byte{snpRequest: key}, SevProduct: abi.DefaultSevProduct()}, nil
	}
}

func TestSNP(t *testing.T) {
	chip := bytes.Repeat([]byte{0xc5}, 32)
	ctx := context.Background()
	a := &SNP{Binding: []byte("workload-a"), OpenDevice: fakeDevice(chip)}
	ka, err := a.Key(ctx, "data")
	if err != nil {
		t.Fatal(err)
	}
	if len(ka) != Size || bytes.Equal(ka, chip) {
		t.Fatalf("key %x: want 32 bytes derived from, not equal to, the chip key", ka)
	}
	ka2, _ := a.Key(ctx, "data")
	if !bytes.Equal(ka, ka2) {
		t.Fatal("the same binding gave two keys")
	}
	kb, _ := (&SNP{Binding: []byte("workload-b"), OpenDevice: fakeDevice(chip)}).Key(ctx, "data")
	if bytes.Equal(ka, kb) {
		t.Fatal("two workload bindings gave the same key")
	}
	other, _ := (&SNP{Binding: []byte("workload-a"), OpenDevice: fakeDevice(bytes.Repeat([]byte{1}, 32))}).Key(ctx, "data")
	if bytes.Equal(ka, other) {
		t.Fatal("two chip keys gave the same key")
	}
	// A device answering another request (the fake knows only snpRequest)
	// fails, as does a missing device and an all-zero key.
	wrong := &SNP{OpenDevice: func() (client.Device, error) {
		return &sgtest.Device{Keys: map[string][]byte{"0 1 0 0 0": chip}}, nil
	}}
	if _, err := wrong.Key(ctx, "data"); err == nil {
		t.Fatal("a key for another request was accepted")
	}
	missing := &SNP{OpenDevice: func() (client.Device, error) { return nil, errors.New("no /dev/sev-guest") }}
	if _, err := missing.Key(ctx, "data"); err == nil || !strings.Contains(err.Error(), "SEV-SNP") {
		t.Fatalf("missing device: %v", err)
	}
	if _, err := (&SNP{OpenDevice: fakeDevice(make([]byte, 32))}).Key(ctx, "data"); err == nil {
		t.Fatal("an all-zero key was accepted")
	}
}

func TestParseSpec(t *testing.T) {
	for _, tc := range []struct {
		spec, file string
		snp, ok    bool
	}{
		{"snp", "", true, true},
		{"file:/k", "/k", false, true},
		{"file:", "", false, false},
		{"", "", false, false},
		{"SNP", "", false, false},
		{"tdx", "", false, false},
	} {
		file, snp, err := ParseSpec(tc.spec)
		if (err == nil) != tc.ok || file != tc.file || snp != tc.snp {
			t.Errorf("ParseSpec(%q) = %q, %v, %v", tc.spec, file, snp, err)
		}
	}
}

func TestFromSpec(t *testing.T) {
	k := bytes.Repeat([]byte{3}, Size)
	s, err := FromSpec("file:/k", map[string][]byte{"file:/k": k}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Key(context.Background(), "v"); !bytes.Equal(got, k) {
		t.Fatal("file: source gives another key")
	}
	if _, err := FromSpec("file:/other", map[string][]byte{"file:/k": k}, nil, nil); err == nil {
		t.Fatal("a key the host did not pass was accepted")
	}
	if s, err := FromSpec("snp", nil, []byte("w"), nil); err != nil || string(s.(*SNP).Binding) != "w" {
		t.Fatalf("snp: %v, %v", s, err)
	}
	if _, err := FromSpec("tpm", nil, nil, nil); err == nil {
		t.Fatal("an unknown source was accepted")
	}
}
