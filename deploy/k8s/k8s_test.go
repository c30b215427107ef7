package k8s

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/enarx-go/enarx/attestation/policy"
	"github.com/enarx-go/enarx/drawbridge/server"
	"github.com/enarx-go/enarx/steward/stewardtest"
)

// kustomizations are the directories a user renders.
var kustomizations = []string{"base", "overlays/file-store", "sample"}

// operatorSecrets are the Secrets the operator creates before applying
// (the base names them; docs/deploy.md says how to make each), with the
// keys the manifests read from them.
var operatorSecrets = map[string][]string{
	"steward-ca":     {"tls.crt", "tls.key"},
	"drawbridge-tls": {"tls.crt", "tls.key"},
	"drawbridge-s3":  {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"},
}

// objects is one rendered kustomization, decoded.
type objects struct {
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	pdbs        []*policyv1.PodDisruptionBudget
	configMaps  map[string]*corev1.ConfigMap
	pvcs        map[string]*corev1.PersistentVolumeClaim
	pods        []*corev1.Pod
	accounts    map[string]*corev1.ServiceAccount
}

// strict decodes one object's YAML into v, refusing fields v's type does
// not have (what the API server would prune or refuse).
func strict(t *testing.T, y []byte, v any) {
	t.Helper()
	j, err := sigsyaml.YAMLToJSON(y)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("strict decoding into %T: %v\n%s", v, err, y)
	}
}

// render runs kustomize (its Go API, the code `kubectl kustomize` runs)
// on dir and decodes every resource strictly by its apiVersion and kind.
func render(t *testing.T, dir string) *objects {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	o := &objects{configMaps: map[string]*corev1.ConfigMap{}, pvcs: map[string]*corev1.PersistentVolumeClaim{}, accounts: map[string]*corev1.ServiceAccount{}}
	if len(rm.Resources()) == 0 {
		t.Fatalf("kustomize build %s: no resources", dir)
	}
	for _, r := range rm.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		switch gvk := r.GetApiVersion() + " " + r.GetKind(); gvk {
		case "apps/v1 Deployment":
			v := &appsv1.Deployment{}
			strict(t, y, v)
			o.deployments = append(o.deployments, v)
		case "v1 Service":
			v := &corev1.Service{}
			strict(t, y, v)
			o.services = append(o.services, v)
		case "policy/v1 PodDisruptionBudget":
			v := &policyv1.PodDisruptionBudget{}
			strict(t, y, v)
			o.pdbs = append(o.pdbs, v)
		case "v1 ConfigMap":
			v := &corev1.ConfigMap{}
			strict(t, y, v)
			o.configMaps[v.Name] = v
		case "v1 PersistentVolumeClaim":
			v := &corev1.PersistentVolumeClaim{}
			strict(t, y, v)
			o.pvcs[v.Name] = v
		case "v1 Pod":
			v := &corev1.Pod{}
			strict(t, y, v)
			o.pods = append(o.pods, v)
		case "v1 ServiceAccount":
			v := &corev1.ServiceAccount{}
			strict(t, y, v)
			o.accounts[v.Name] = v
		default:
			t.Fatalf("%s: unexpected resource %s %s: add it to this test's decoder", dir, gvk, r.GetName())
		}
	}
	return o
}

func (o *objects) deployment(t *testing.T, name string) *appsv1.Deployment {
	t.Helper()
	for _, d := range o.deployments {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("no Deployment %s", name)
	return nil
}

// TestRenderStrict renders every kustomization and checks each object
// against what references it.
func TestRenderStrict(t *testing.T) {
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			o := render(t, dir)
			for _, d := range o.deployments {
				checkPodSpec(t, o, "Deployment "+d.Name, &d.Spec.Template.Spec)
				sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
				if err != nil {
					t.Fatal(err)
				}
				if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
					t.Errorf("Deployment %s: selector %v does not match its pod labels %v", d.Name, sel, d.Spec.Template.Labels)
				}
			}
			for _, s := range o.services {
				d := matching(o, labels.SelectorFromSet(s.Spec.Selector))
				if d == nil {
					t.Errorf("Service %s: selector %v matches no Deployment's pods", s.Name, s.Spec.Selector)
					continue
				}
				for _, p := range s.Spec.Ports {
					if _, ok := containerPort(&d.Spec.Template.Spec, p.TargetPort); !ok {
						t.Errorf("Service %s: targetPort %s is no port of Deployment %s", s.Name, p.TargetPort.String(), d.Name)
					}
				}
			}
			for _, p := range o.pdbs {
				sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
				if err != nil {
					t.Fatal(err)
				}
				d := matching(o, sel)
				if d == nil {
					t.Errorf("PodDisruptionBudget %s matches no Deployment's pods", p.Name)
					continue
				}
				if p.Spec.MinAvailable == nil || p.Spec.MinAvailable.IntValue() >= int(*d.Spec.Replicas) {
					t.Errorf("PodDisruptionBudget %s: minAvailable %v with %d replicas of %s blocks every eviction", p.Name, p.Spec.MinAvailable, *d.Spec.Replicas, d.Name)
				}
			}
			for _, p := range o.pods {
				checkPodSpec(t, o, "Pod "+p.Name, &p.Spec)
			}
		})
	}
}

// TestBaseReplicated: in the base, both services run several replicas
// under a disruption budget, and Drawbridge's store is a bucket that many
// processes may share.
func TestBaseReplicated(t *testing.T) {
	o := render(t, "base")
	for _, name := range []string{"steward", "drawbridge"} {
		d := o.deployment(t, name)
		if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
			t.Errorf("Deployment %s: want at least 2 replicas", name)
		}
		if !slices.ContainsFunc(o.pdbs, func(p *policyv1.PodDisruptionBudget) bool { return p.Name == name }) {
			t.Errorf("no PodDisruptionBudget for %s", name)
		}
	}
	conf := drawbridgeConfig(t, o)
	if u, err := url.Parse(conf["store"].(string)); err != nil || u.Scheme != "s3" {
		t.Errorf("base drawbridge store %q: want an s3:// bucket", conf["store"])
	}
}

// TestFileStoreOneReplica: a file:// bucket is held by one process (an
// flock), so its overlay runs one replica, recreates instead of rolling,
// has no disruption budget for it, and keeps the bucket on the claimed
// volume.
func TestFileStoreOneReplica(t *testing.T) {
	o := render(t, "overlays/file-store")
	d := o.deployment(t, "drawbridge")
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("drawbridge replicas = %v, want 1", d.Spec.Replicas)
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || d.Spec.Strategy.RollingUpdate != nil {
		t.Errorf("drawbridge strategy = %+v, want Recreate", d.Spec.Strategy)
	}
	for _, p := range o.pdbs {
		if p.Name == "drawbridge" {
			t.Error("the file-store overlay keeps drawbridge's PodDisruptionBudget")
		}
	}
	c := d.Spec.Template.Spec.Containers[0]
	if len(c.EnvFrom) != 0 {
		t.Errorf("file-store drawbridge still reads S3 credentials: %+v", c.EnvFrom)
	}
	conf := drawbridgeConfig(t, o)
	u, err := url.Parse(conf["store"].(string))
	if err != nil || u.Scheme != "file" {
		t.Fatalf("file-store drawbridge store %q: want a file:// bucket", conf["store"])
	}
	vol := ""
	for _, m := range c.VolumeMounts {
		if m.MountPath == u.Path {
			vol = m.Name
		}
	}
	claimed := false
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == vol && v.PersistentVolumeClaim != nil {
			claimed = true
		}
	}
	if !claimed {
		t.Errorf("the file:// bucket %s is not on a PersistentVolumeClaim", u.Path)
	}
	if s := o.deployment(t, "steward"); *s.Spec.Replicas < 2 {
		t.Error("the file-store overlay changed Steward's replicas")
	}
}

// TestOwnServiceAccounts: each Deployment's pods run as a ServiceAccount
// of their own, rendered with the Deployment and mounting no token. Cloud
// roles (IRSA, EKS Pod Identity, GKE Workload Identity) are bound to a
// ServiceAccount: on the namespace's default one, shared by every pod
// there, the bucket role docs/deploy.md has the operator bind for
// Drawbridge would reach the Steward's pods, which hold the CA key, and
// any Keep's pod in the namespace.
func TestOwnServiceAccounts(t *testing.T) {
	for _, dir := range []string{"base", "overlays/file-store"} {
		t.Run(dir, func(t *testing.T) {
			o := render(t, dir)
			owner := map[string]string{}
			for _, d := range o.deployments {
				sa := d.Spec.Template.Spec.ServiceAccountName
				switch {
				case sa == "" || sa == "default":
					t.Errorf("Deployment %s runs as the namespace's default ServiceAccount: give it serviceAccountName and a ServiceAccount of its own", d.Name)
					continue
				case owner[sa] != "":
					t.Errorf("Deployments %s and %s share the ServiceAccount %s", owner[sa], d.Name, sa)
				}
				owner[sa] = d.Name
				a := o.accounts[sa]
				if a == nil {
					t.Errorf("Deployment %s: ServiceAccount %s is not rendered", d.Name, sa)
					continue
				}
				if a.AutomountServiceAccountToken == nil || *a.AutomountServiceAccountToken {
					t.Errorf("ServiceAccount %s: set automountServiceAccountToken: false (no pod here talks to the API server)", sa)
				}
			}
		})
	}
}

// TestCAKeyOnlyInSteward: the Steward's CA key (steward-ca's tls.key)
// reaches the Steward's pods and no other: a pod that needs the CA
// certificate (Drawbridge's optional ca setting) projects tls.crt alone.
func TestCAKeyOnlyInSteward(t *testing.T) {
	const secret, key = "steward-ca", "tls.key"
	carriesKey := func(items []corev1.KeyToPath) bool {
		return len(items) == 0 || slices.ContainsFunc(items, func(i corev1.KeyToPath) bool { return i.Key == key })
	}
	check := func(what string, spec *corev1.PodSpec) {
		for _, v := range spec.Volumes {
			if v.Secret != nil && v.Secret.SecretName == secret && carriesKey(v.Secret.Items) {
				t.Errorf("%s: volume %s mounts %s's %s", what, v.Name, secret, key)
			}
			if v.Projected != nil {
				for _, src := range v.Projected.Sources {
					if src.Secret != nil && src.Secret.Name == secret && carriesKey(src.Secret.Items) {
						t.Errorf("%s: projected volume %s mounts %s's %s", what, v.Name, secret, key)
					}
				}
			}
		}
		for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
			for _, e := range c.EnvFrom {
				if e.SecretRef != nil && e.SecretRef.Name == secret {
					t.Errorf("%s: container %s takes %s's %s in its environment", what, c.Name, secret, key)
				}
			}
			for _, e := range c.Env {
				if r := e.ValueFrom; r != nil && r.SecretKeyRef != nil && r.SecretKeyRef.Name == secret && r.SecretKeyRef.Key == key {
					t.Errorf("%s: container %s takes %s's %s in $%s", what, c.Name, secret, key, e.Name)
				}
			}
		}
	}
	for _, dir := range kustomizations {
		o := render(t, dir)
		for _, d := range o.deployments {
			if d.Name != "steward" {
				check(dir+": Deployment "+d.Name, &d.Spec.Template.Spec)
			}
		}
		for _, p := range o.pods {
			check(dir+": Pod "+p.Name, &p.Spec)
		}
	}
}

// TestSampleRuntimeClass: the sample Pod names a RuntimeClass that
// deploy/runtimeclass defines.
func TestSampleRuntimeClass(t *testing.T) {
	o := render(t, "sample")
	if len(o.pods) == 0 {
		t.Fatal("sample: no Pod")
	}
	classes := map[string]bool{}
	files, err := filepath.Glob(filepath.Join("..", "runtimeclass", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("deploy/runtimeclass: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rc := &nodev1.RuntimeClass{}
		strict(t, b, rc)
		classes[rc.Name] = true
	}
	for _, p := range o.pods {
		if p.Spec.RuntimeClassName == nil || !classes[*p.Spec.RuntimeClassName] {
			t.Errorf("Pod %s: runtimeClassName %v is none of deploy/runtimeclass (%v)", p.Name, p.Spec.RuntimeClassName, classes)
		}
	}
}

// TestDocsNameSecrets: docs/deploy.md says how to create every Secret the
// manifests read.
func TestDocsNameSecrets(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "deploy.md"))
	if err != nil {
		t.Fatal(err)
	}
	for name := range operatorSecrets {
		if !bytes.Contains(b, []byte("secret")) || !bytes.Contains(b, []byte(" "+name+" ")) {
			t.Errorf("docs/deploy.md does not show how to create the Secret %s", name)
		}
	}
}

// matching returns the Deployment whose pods sel selects (nil if none).
func matching(o *objects, sel labels.Selector) *appsv1.Deployment {
	if sel.Empty() {
		return nil
	}
	for _, d := range o.deployments {
		if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			return d
		}
	}
	return nil
}

// containerPort resolves a named or numbered port of the pod's containers.
func containerPort(spec *corev1.PodSpec, p intstr.IntOrString) (int32, bool) {
	for _, c := range spec.Containers {
		for _, cp := range c.Ports {
			if p.Type == intstr.String && cp.Name == p.StrVal || p.Type == intstr.Int && cp.ContainerPort == p.IntVal {
				return cp.ContainerPort, true
			}
		}
	}
	return 0, false
}

// checkPodSpec ties a pod's volumes, mounts, env sources and probes to
// what exists: ConfigMaps and PVCs in the render, Secrets among the
// operator's, probe ports among the container's; and the hardening every
// pod here has.
func checkPodSpec(t *testing.T, o *objects, what string, spec *corev1.PodSpec) {
	t.Helper()
	vols := map[string]bool{}
	for _, v := range spec.Volumes {
		vols[v.Name] = true
		switch {
		case v.ConfigMap != nil:
			if o.configMaps[v.ConfigMap.Name] == nil {
				t.Errorf("%s: volume %s names ConfigMap %s, which is not rendered", what, v.Name, v.ConfigMap.Name)
			}
		case v.Secret != nil:
			if operatorSecrets[v.Secret.SecretName] == nil {
				t.Errorf("%s: volume %s names Secret %s, not one of the operator's (%v)", what, v.Name, v.Secret.SecretName, operatorSecrets)
			}
		case v.PersistentVolumeClaim != nil:
			if o.pvcs[v.PersistentVolumeClaim.ClaimName] == nil {
				t.Errorf("%s: volume %s claims %s, which is not rendered", what, v.Name, v.PersistentVolumeClaim.ClaimName)
			}
		}
	}
	for _, c := range spec.Containers {
		for _, m := range c.VolumeMounts {
			if !vols[m.Name] {
				t.Errorf("%s: container %s mounts undefined volume %s", what, c.Name, m.Name)
			}
		}
		for _, e := range c.EnvFrom {
			if e.SecretRef != nil && operatorSecrets[e.SecretRef.Name] == nil {
				t.Errorf("%s: envFrom Secret %s is not one of the operator's", what, e.SecretRef.Name)
			}
		}
		for _, pr := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
			if pr == nil || pr.HTTPGet == nil {
				continue
			}
			if _, ok := containerPort(spec, pr.HTTPGet.Port); !ok {
				t.Errorf("%s: probe port %s is no port of container %s", what, pr.HTTPGet.Port.String(), c.Name)
			}
		}
		if c.Image == "" || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s: container %s needs an image and a memory limit", what, c.Name)
		}
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("%s: mounts a service account token it does not use", what)
	}
}

// drawbridgeConfig returns the rendered drawbridge.toml settings.
func drawbridgeConfig(t *testing.T, o *objects) map[string]any {
	t.Helper()
	cm := o.configMaps["drawbridge-config"]
	if cm == nil {
		t.Fatal("no ConfigMap drawbridge-config")
	}
	var conf map[string]any
	if err := toml.Unmarshal([]byte(cm.Data["drawbridge.toml"]), &conf); err != nil {
		t.Fatalf("drawbridge.toml: %v", err)
	}
	return conf
}

// buildCommand builds ./cmd/name with the images' build script.
func buildCommand(t *testing.T, name string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("sh", "deploy/images/gobuild.sh", "./cmd/"+name, out)
	cmd.Dir = filepath.Join("..", "..")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building ./cmd/%s: %v\n%s", name, err, b)
	}
	return out
}

// pem writes a block.
func pemBytes(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// secretFiles is test material for the operator's Secrets: a production
// (non-debug) Steward CA, a self-signed TLS server certificate.
func secretFiles(t *testing.T) map[string]map[string][]byte {
	t.Helper()
	ca, _ := stewardtest.ProductionCA(t, elliptic.P256())
	caKey, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	var chain []byte
	for _, c := range ca.Chain {
		chain = append(chain, pemBytes("CERTIFICATE", c.Raw)...)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "drawbridge"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"drawbridge"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]map[string][]byte{
		"steward-ca":     {"tls.crt": chain, "tls.key": pemBytes("PRIVATE KEY", caKey)},
		"drawbridge-tls": {"tls.crt": pemBytes("CERTIFICATE", der), "tls.key": pemBytes("PRIVATE KEY", srvKey)},
	}
}

// materialize lays out container c's mounts under root as the kubelet
// would: ConfigMap keys and Secret keys as files (subPath mounts as the
// one file), and returns a function mapping an in-container path to the
// laid-out one.
func materialize(t *testing.T, o *objects, spec *corev1.PodSpec, c *corev1.Container, root string) func(string) string {
	t.Helper()
	secrets := secretFiles(t)
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	for _, m := range c.VolumeMounts {
		v := vols[m.Name]
		var files map[string][]byte
		switch {
		case v.ConfigMap != nil:
			files = map[string][]byte{}
			for k, s := range o.configMaps[v.ConfigMap.Name].Data {
				files[k] = []byte(s)
			}
		case v.Secret != nil:
			files = secrets[v.Secret.SecretName]
			for _, k := range operatorSecrets[v.Secret.SecretName] {
				if files[k] == nil {
					t.Fatalf("test material lacks %s/%s", v.Secret.SecretName, k)
				}
			}
		}
		dst := filepath.Join(root, m.MountPath)
		if m.SubPath != "" {
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, files[m.SubPath], 0o600); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		for k, b := range files {
			if err := os.WriteFile(filepath.Join(dst, k), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	return func(p string) string {
		for _, m := range c.VolumeMounts {
			if p == m.MountPath || strings.HasPrefix(p, strings.TrimSuffix(m.MountPath, "/")+"/") {
				return filepath.Join(root, p)
			}
		}
		t.Fatalf("%s is on no volume mount of container %s", p, c.Name)
		return ""
	}
}

// freePort returns a TCP port free on 127.0.0.1 just now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestStewardRunsWithRenderedArgs runs the real steward binary with the
// base's container args (every path laid out from the rendered ConfigMap
// and a test CA in the Secret's shape), then sends the Deployment's probes
// and the Prometheus scrape to it.
func TestStewardRunsWithRenderedArgs(t *testing.T) {
	o := render(t, "base")
	d := o.deployment(t, "steward")
	spec := &d.Spec.Template.Spec
	c := &spec.Containers[0]
	// The policy the ConfigMap carries loads and builds verifiers.
	root := t.TempDir()
	at := materialize(t, o, spec, c, root)
	var args []string
	for _, a := range c.Args {
		name, val, ok := strings.Cut(a, "=")
		if !ok || !strings.HasPrefix(name, "--") {
			t.Fatalf("steward arg %q: write flags as --name=value", a)
		}
		if strings.HasPrefix(val, "/") {
			val = at(val)
		}
		switch name {
		case "--config":
			p, err := policy.Load(val)
			if err != nil {
				t.Fatalf("steward-policy: %v", err)
			}
			if _, err := p.Verifiers(policy.Options{}); err != nil {
				t.Fatalf("steward-policy: %v", err)
			}
		case "--port":
			if _, ok := containerPort(spec, intstr.FromString("http")); !ok || val != strconv.Itoa(int(c.Ports[0].ContainerPort)) {
				t.Fatalf("--port=%s is not the container port %d", val, c.Ports[0].ContainerPort)
			}
			continue // moved below, to a free port
		case "--addr":
			continue
		}
		args = append(args, name+"="+val)
	}
	port := freePort(t)
	args = append(args, "--addr=127.0.0.1", "--port="+strconv.Itoa(port))
	bin := buildCommand(t, "steward")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	stop := func() {
		if !stopped {
			cancel()
			<-exited
			stopped = true
		}
	}
	defer stop()
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	waitServing(t, http.DefaultClient, base+c.ReadinessProbe.HTTPGet.Path, exited, &stderr)
	for _, p := range []string{c.LivenessProbe.HTTPGet.Path, d.Spec.Template.Annotations["prometheus.io/path"]} {
		get200(t, http.DefaultClient, base+p)
	}
	stop() // stderr is complete (and no longer written) once Wait returned
	if strings.Contains(stderr.String(), "DEBUG MODE") {
		t.Errorf("steward with the base's args runs in debug mode:\n%s", stderr.String())
	}
}

// waitServing polls url until it answers 200, failing if the process
// exits first.
func waitServing(t *testing.T, client *http.Client, url string, exited chan error, stderr *bytes.Buffer) {
	t.Helper()
	for {
		select {
		case err := <-exited:
			exited <- err // for the caller's cleanup
			t.Fatalf("exited before serving: %v\n%s", err, stderr.String())
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			t.Fatalf("GET %s: %s", url, resp.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func get200(t *testing.T, client *http.Client, url string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
}

// TestDrawbridgeConfigAccepted runs the real drawbridge binary with each
// rendered drawbridge.toml (paths laid out as mounted): every setting is a
// flag, the TLS pair loads, and it gets as far as OIDC discovery, which
// needs the cluster's issuer (example.internal does not resolve here).
func TestDrawbridgeConfigAccepted(t *testing.T) {
	bin := buildCommand(t, "drawbridge")
	for _, dir := range []string{"base", "overlays/file-store"} {
		t.Run(dir, func(t *testing.T) {
			o := render(t, dir)
			d := o.deployment(t, "drawbridge")
			spec := &d.Spec.Template.Spec
			c := &spec.Containers[0]
			root := t.TempDir()
			at := materialize(t, o, spec, c, root)
			if len(c.Args) != 1 || !strings.HasPrefix(c.Args[0], "@") {
				t.Fatalf("drawbridge args %q: want @CONFIG.toml", c.Args)
			}
			conf := at(c.Args[0][1:])
			var settings map[string]any
			b, err := os.ReadFile(conf)
			if err != nil {
				t.Fatal(err)
			}
			if err := toml.Unmarshal(b, &settings); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"cert", "key"} {
				settings[k] = at(settings[k].(string))
			}
			if u, _ := url.Parse(settings["store"].(string)); u.Scheme == "file" {
				at(u.Path) // on a mount
				dirPath := filepath.Join(root, u.Path)
				if err := os.MkdirAll(dirPath, 0o755); err != nil {
					t.Fatal(err)
				}
				u.Path = dirPath
				settings["store"] = u.String()
			}
			_, port, err := net.SplitHostPort(settings["addr"].(string))
			if err != nil || port != strconv.Itoa(int(c.Ports[0].ContainerPort)) {
				t.Errorf("drawbridge addr %q is not on the container port %d", settings["addr"], c.Ports[0].ContainerPort)
			}
			if b, err = toml.Marshal(settings); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(conf, b, 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "@"+conf).CombinedOutput()
			if err == nil {
				t.Fatalf("drawbridge served without its OIDC issuer:\n%s", out)
			}
			issuer := settings["oidc-issuer"].(string)
			if !strings.Contains(string(out), strings.TrimSuffix(issuer, "/")) || strings.Contains(string(out), "config file") || strings.Contains(string(out), "loading TLS") {
				t.Fatalf("drawbridge @%s stopped before OIDC discovery of %s:\n%s", c.Args[0][1:], issuer, out)
			}
		})
	}
}

// TestDrawbridgeProbes serves a real (dev-mode) Drawbridge and sends it
// the base Deployment's probes and scrape as the kubelet and Prometheus
// would: HTTPS without verifying the certificate.
func TestDrawbridgeProbes(t *testing.T) {
	o := render(t, "base")
	d := o.deployment(t, "drawbridge")
	c := &d.Spec.Template.Spec.Containers[0]
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Options{Dev: true, Store: t.TempDir(), Addr: "127.0.0.1:0", Ready: func(a net.Addr) { ready <- a }})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("drawbridge: %v", err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for _, pr := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
		if pr.HTTPGet.Scheme != corev1.URISchemeHTTPS {
			t.Errorf("drawbridge probe scheme %q: it serves HTTPS only", pr.HTTPGet.Scheme)
		}
		get200(t, client, "https://"+addr.String()+pr.HTTPGet.Path)
	}
	ann := d.Spec.Template.Annotations
	if ann["prometheus.io/scheme"] != "https" || ann["prometheus.io/port"] != strconv.Itoa(int(c.Ports[0].ContainerPort)) {
		t.Errorf("drawbridge scrape annotations %v", ann)
	}
	get200(t, client, "https://"+addr.String()+ann["prometheus.io/path"])
}

// TestStewardPolicyAdmitsNoKeep: the base's policy is a placeholder that a
// production-mode Steward (the base's CA is not self-issued) applies as
// it is until the operator edits it. So it must admit no Keep: every TEE
// the Steward verifies has a table whose allow-list holds only all-zero
// placeholders, and no-hardware evidence is not allowed. (A missing table
// means the TEE's defaults: any genuine enclave, VM or TD, whatever it
// runs, and it may then claim any workload identity.)
func TestStewardPolicyAdmitsNoKeep(t *testing.T) {
	o := render(t, "base")
	cm, ok := o.configMaps["steward-policy"]
	if !ok {
		t.Fatal("no ConfigMap steward-policy")
	}
	p, err := policy.Parse([]byte(cm.Data["policy.toml"]))
	if err != nil {
		t.Fatalf("steward-policy: %v", err)
	}
	// placeholders checks the allow-lists (hex) of one table.
	placeholders := func(tee string, present bool, lists ...[]string) {
		t.Helper()
		if !present {
			t.Errorf("no [%s] table: the sample admits any %s Keep on genuine hardware", tee, tee)
			return
		}
		n := 0
		for _, l := range lists {
			for _, h := range l {
				n++
				if strings.Trim(h, "0") != "" {
					t.Errorf("[%s]: %s is not an all-zero placeholder", tee, h)
				}
			}
		}
		if n == 0 {
			t.Errorf("[%s]: no allow-list: the sample admits any %s Keep on genuine hardware", tee, tee)
		}
	}
	hexes := func(ds ...[][]byte) []string {
		var out []string
		for _, l := range ds {
			for _, d := range l {
				out = append(out, hex.EncodeToString(d))
			}
		}
		return out
	}
	if p.SGX != nil {
		placeholders("sgx", true, p.SGX.Signer, p.SGX.Hash)
	} else {
		placeholders("sgx", false)
	}
	if p.SNP != nil {
		placeholders("snp", true, hexes(p.SNP.Signers, p.SNP.Measurements))
	} else {
		placeholders("snp", false)
	}
	if p.TDX != nil {
		placeholders("tdx", true, hexes(p.TDX.MRTD))
	} else {
		placeholders("tdx", false)
	}
	if p.AllowNoHardware || len(p.EmulatedRoots()) != 0 || !p.VerifyTime.IsZero() {
		t.Errorf("the sample allows no-hardware evidence, emulated roots or a pinned clock: %+v", p)
	}
}
