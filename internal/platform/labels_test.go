package platform_test

import (
	"bytes"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/internal/platform"
)

// labelName is a Kubernetes label key's name part and value syntax:
// at most 63 characters, alphanumeric at both ends, '-', '_' and '.'
// between (k8s.io/apimachinery validation.IsQualifiedName / IsValidLabelValue).
var labelName = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)

// checkLabel checks key=value against Kubernetes' label syntax with the
// enarx.dev prefix.
func checkLabel(t *testing.T, l string) (key, value string) {
	t.Helper()
	key, value, ok := strings.Cut(l, "=")
	prefix, name, ok2 := strings.Cut(key, "/")
	if !ok || !ok2 || prefix != "enarx.dev" || !labelName.MatchString(name) || !labelName.MatchString(value) {
		t.Errorf("label %q is not a valid enarx.dev Kubernetes label", l)
	}
	return key, value
}

func TestLabelsFollowPass(t *testing.T) {
	r := &platform.Report{Backends: []platform.Backend{
		{Name: "snp", Data: []platform.Datum{{Name: "Driver", Pass: true}}},
		{Name: "sandbox", Data: []platform.Datum{{Name: "Seccomp filters", Pass: false}}},
		{Name: "tdx-vm", Data: []platform.Datum{{Name: "Driver", Pass: true}}, Config: []platform.Datum{{Name: "Configured", Pass: false}}},
		{Name: "nil"},
	}}
	want := []string{"enarx.dev/backend.nil=true", "enarx.dev/backend.sandbox=false", "enarx.dev/backend.snp=true", "enarx.dev/backend.tdx-vm=false"}
	if got := r.Labels(); !slices.Equal(got, want) {
		t.Fatalf("Labels() = %q, want %q", got, want)
	}
	var b bytes.Buffer
	if err := r.WriteLabels(&b); err != nil {
		t.Fatal(err)
	}
	if b.String() != strings.Join(want, "\n")+"\n" {
		t.Fatalf("WriteLabels wrote %q", b.String())
	}
	if platform.Label("snp") != "enarx.dev/backend.snp" {
		t.Fatalf("Label(snp) = %q", platform.Label("snp"))
	}
}

// On this machine: one valid label per probed backend, true exactly where
// the report passes it.
func TestLabelsOfThisHost(t *testing.T) {
	r := platform.Collect("test", platform.HostEnv())
	got := map[string]string{}
	for _, l := range r.Labels() {
		k, v := checkLabel(t, l)
		got[k] = v
	}
	for _, b := range r.Backends {
		v, ok := got[platform.Label(b.Name)]
		if !ok {
			if !strings.HasSuffix(b.Name, "-emulated") {
				t.Errorf("no label for backend %s", b.Name)
			}
			continue
		}
		if want := map[bool]string{true: "true", false: "false"}[b.Pass()]; v != want {
			t.Errorf("%s: label %s, report says pass=%t", b.Name, v, b.Pass())
		}
	}
	if got[platform.Label("nil")] != "true" {
		t.Errorf("the nil backend runs everywhere, labels say %q", got[platform.Label("nil")])
	}
}
