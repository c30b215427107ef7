package k8s

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"

	"github.com/enarx-go/enarx/drawbridge/client"
	"github.com/enarx-go/enarx/shim"
)

// fence is a fenced code block of docs/kubernetes.md: its language and
// its text.
var fence = regexp.MustCompile("(?s)```(yaml|toml)\n(.*?)```")

// TestKubernetesDocs: the Pod manifests of docs/kubernetes.md decode
// strictly into core/v1 Pods with a RuntimeClass of deploy/runtimeclass,
// the package pods name a package ENARX_PACKAGE accepts, and every options
// block that names a Drawbridge key is valid runtime options.
func TestKubernetesDocs(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "kubernetes.md"))
	if err != nil {
		t.Fatal(err)
	}
	classes := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join("..", "runtimeclass", "*.yaml"))
	for _, f := range files {
		y, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rc := &nodev1.RuntimeClass{}
		strict(t, y, rc)
		classes[rc.Name] = true
	}
	pods, packages, options := 0, 0, 0
	for _, m := range fence.FindAllSubmatch(b, -1) {
		lang, text := string(m[1]), m[2]
		switch {
		case lang == "yaml" && strings.Contains(string(text), "kind: Pod"):
			p := &corev1.Pod{}
			strict(t, text, p)
			pods++
			if p.Spec.RuntimeClassName == nil {
				t.Errorf("docs Pod %s: no runtimeClassName", p.Name)
			} else if !classes[*p.Spec.RuntimeClassName] {
				t.Errorf("docs Pod %s: runtimeClassName %q is none of deploy/runtimeclass (%v)", p.Name, *p.Spec.RuntimeClassName, classes)
			}
			for _, c := range p.Spec.Containers {
				for _, e := range c.Env {
					if e.Name != shim.PackageEnv {
						continue
					}
					packages++
					if _, err := client.ParsePackageSpec(e.Value); err != nil {
						t.Errorf("docs Pod %s: %s=%q: %v", p.Name, e.Name, e.Value, err)
					}
				}
			}
		case lang == "toml" && strings.Contains(string(text), "drawbridge_"):
			options++
			if _, err := shim.DecodeOptions(text); err != nil {
				t.Errorf("docs runtime options:\n%s\n%v", text, err)
			}
		}
	}
	if pods < 2 || packages < 1 || options < 1 {
		t.Fatalf("docs/kubernetes.md: found %d Pods, %d naming a package, %d Drawbridge options blocks; want at least 2, 1, 1", pods, packages, options)
	}
}
