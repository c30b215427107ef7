package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
	"go.yaml.in/yaml/v3"

	"github.com/enarx-go/enarx/internal/platform"
	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/shim"
)

// runtimeClass is node.k8s.io/v1 RuntimeClass, field for field as
// k8s.io/api/node/v1 has it (metadata reduced to what manifests set), so
// that strict decoding refuses what the API server would not know. The
// real types are not imported: k8s.io/api and apimachinery would more
// than double this module's dependencies for four fields.
type runtimeClass struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name        string            `yaml:"name"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	Handler  string `yaml:"handler"`
	Overhead *struct {
		PodFixed map[string]string `yaml:"podFixed"`
	} `yaml:"overhead"`
	Scheduling *struct {
		NodeSelector map[string]string `yaml:"nodeSelector"`
		Tolerations  []struct {
			Key               string `yaml:"key"`
			Operator          string `yaml:"operator"`
			Value             string `yaml:"value"`
			Effect            string `yaml:"effect"`
			TolerationSeconds *int64 `yaml:"tolerationSeconds"`
		} `yaml:"tolerations"`
	} `yaml:"scheduling"`
}

// dnsLabel is RFC 1123 label syntax, which Kubernetes requires of a
// RuntimeClass handler (and, within 253 characters, of its name).
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// containerdConfig is the part of containerd's config version 2 that
// deploy/containerd/enarx.toml sets.
type containerdConfig struct {
	Version int `toml:"version"`
	Plugins struct {
		CRI struct {
			Containerd struct {
				DefaultRuntimeName string `toml:"default_runtime_name"`
				Runtimes           map[string]struct {
					RuntimeType string `toml:"runtime_type"`
					Options     struct {
						ConfigPath string `toml:"ConfigPath"`
					} `toml:"options"`
				} `toml:"runtimes"`
			} `toml:"containerd"`
		} `toml:"io.containerd.grpc.v1.cri"`
	} `toml:"plugins"`
}

// Every RuntimeClass decodes strictly, selects the nodes that
// `enarx platform info --labels` marks for its backend, and names a
// containerd runtime of the enarx shim whose options file picks that same
// backend and passes the shim's own strict decoding.
func TestRuntimeClasses(t *testing.T) {
	raw, err := os.ReadFile("containerd/enarx.toml")
	if err != nil {
		t.Fatal(err)
	}
	var cc containerdConfig
	d := toml.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(&cc); err != nil {
		t.Fatalf("containerd/enarx.toml: %v", err)
	}
	if cc.Version != 2 {
		t.Errorf("containerd/enarx.toml: version %d, want 2", cc.Version)
	}
	runtimes := cc.Plugins.CRI.Containerd.Runtimes
	files, err := filepath.Glob("runtimeclass/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no RuntimeClass manifests: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var rc runtimeClass
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&rc); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		backend := strings.TrimPrefix(rc.Metadata.Name, "enarx-")
		switch {
		case rc.APIVersion != "node.k8s.io/v1" || rc.Kind != "RuntimeClass":
			t.Errorf("%s: %s %s, want node.k8s.io/v1 RuntimeClass", f, rc.APIVersion, rc.Kind)
		case filepath.Base(f) != rc.Metadata.Name+".yaml" || !dnsLabel.MatchString(rc.Metadata.Name):
			t.Errorf("%s: name %q", f, rc.Metadata.Name)
		case rc.Handler != rc.Metadata.Name || !dnsLabel.MatchString(rc.Handler):
			t.Errorf("%s: handler %q, want the runtime of the same name as the class", f, rc.Handler)
		case rc.Scheduling == nil || len(rc.Scheduling.NodeSelector) != 1 || rc.Scheduling.NodeSelector[platform.Label(backend)] != "true":
			t.Errorf("%s: nodeSelector must be exactly %s: \"true\"", f, platform.Label(backend))
		}
		r, ok := runtimes[rc.Handler]
		if !ok {
			t.Errorf("%s: handler %s is not a runtime in containerd/enarx.toml", f, rc.Handler)
			continue
		}
		if r.RuntimeType != shim.RuntimeName {
			t.Errorf("runtime %s: runtime_type %q, want %q", rc.Handler, r.RuntimeType, shim.RuntimeName)
		}
		if want := "/etc/enarx/shim/" + backend + ".toml"; r.Options.ConfigPath != want {
			t.Errorf("runtime %s: ConfigPath %q, want %q", rc.Handler, r.Options.ConfigPath, want)
		}
		ob, err := os.ReadFile(filepath.Join("shim", backend+".toml"))
		if err != nil {
			t.Errorf("runtime %s: %v", rc.Handler, err)
			continue
		}
		o, err := shim.DecodeOptions(ob)
		if err != nil || o.Backend != backend {
			t.Errorf("shim/%s.toml: %+v, %v; want backend %q", backend, o, err, backend)
		}
		delete(runtimes, rc.Handler)
	}
	// containerd replaces its default runtimes with the config's: the
	// default one, runc, must be there.
	if runtimes["runc"].RuntimeType != "io.containerd.runc.v2" {
		t.Errorf("containerd/enarx.toml does not declare runc (io.containerd.runc.v2), containerd's default runtime: %+v", runtimes["runc"])
	}
	delete(runtimes, "runc")
	for name := range runtimes {
		t.Errorf("containerd runtime %s has no RuntimeClass", name)
	}
}

// containerd itself reads deploy/containerd/enarx.toml: its effective
// configuration (config dump) has every runtime with the shim's type and
// options.
func TestContainerdReadsRuntimes(t *testing.T) {
	if _, err := exec.LookPath("containerd"); err != nil {
		testutil.NeedHost(t, "containerd is not installed (scripts/install-deps.sh installs it)")
	}
	raw, err := os.ReadFile("containerd/enarx.toml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	private := "root = \"" + filepath.Join(dir, "root") + "\"\nstate = \"" + filepath.Join(dir, "state") + "\"\n"
	if err := os.WriteFile(cfg, append([]byte(private), raw...), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("containerd", "--config", cfg, "config", "dump").CombinedOutput()
	if err != nil {
		t.Fatalf("containerd config dump: %v\n%s", err, out)
	}
	var dumped containerdConfig
	if err := toml.Unmarshal(out, &dumped); err != nil {
		t.Fatalf("decoding containerd's dump: %v\n%s", err, out)
	}
	if r := dumped.Plugins.CRI.Containerd.Runtimes[dumped.Plugins.CRI.Containerd.DefaultRuntimeName]; r.RuntimeType == "" {
		t.Errorf("containerd's default runtime %q is not configured: CRI would not load", dumped.Plugins.CRI.Containerd.DefaultRuntimeName)
	}
	for _, b := range []string{"sandbox", "kvm", "sev", "tdx-vm", "snp", "tdx"} {
		r, ok := dumped.Plugins.CRI.Containerd.Runtimes["enarx-"+b]
		if !ok || r.RuntimeType != shim.RuntimeName || r.Options.ConfigPath != "/etc/enarx/shim/"+b+".toml" {
			t.Errorf("containerd's effective config has runtime enarx-%s as %+v (present: %t)", b, r, ok)
		}
	}
}
