package image

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// checkOrder fails unless every module comes after all its dependencies.
func checkOrder(t *testing.T, deps map[string][]string, order []string) {
	t.Helper()
	pos := map[string]int{}
	for i, m := range order {
		if _, dup := pos[m]; dup {
			t.Fatalf("%s appears twice in %v", m, order)
		}
		pos[m] = i
	}
	if len(order) != len(deps) {
		t.Fatalf("order has %d modules, the set %d", len(order), len(deps))
	}
	for m, ds := range deps {
		for _, d := range ds {
			if pos[d] >= pos[m] {
				t.Errorf("%s (at %d) is not after its dependency %s (at %d)", m, pos[m], d, pos[d])
			}
		}
	}
}

func TestLoadOrderFixture(t *testing.T) {
	// depends= of Debian 6.1's virtio_pci, and tsm's.
	deps := map[string][]string{
		"virtio_pci":            {"virtio_ring", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio"},
		"virtio_ring":           nil,
		"virtio_pci_modern_dev": nil,
		"virtio_pci_legacy_dev": nil,
		"virtio":                nil,
		"tsm":                   {"configfs"},
		"configfs":              nil,
	}
	order, err := LoadOrder(deps)
	if err != nil {
		t.Fatal(err)
	}
	checkOrder(t, deps, order)
	// The tie-break is by name among modules whose dependencies are placed.
	want := []string{"configfs", "tsm", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_ring", "virtio_pci"}
	if !reflect.DeepEqual(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
}

func TestLoadOrderErrors(t *testing.T) {
	_, err := LoadOrder(map[string][]string{"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": nil, "e": {"d"}})
	if err == nil || !strings.Contains(err.Error(), "cycle among: a, b, c") {
		t.Errorf("cycle: %v", err)
	}
	_, err = LoadOrder(map[string][]string{"a": {"a"}})
	if err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("self-dependency: %v", err)
	}
	_, err = LoadOrder(map[string][]string{"a": {"missing"}})
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing dependency: %v", err)
	}
	order, err := LoadOrder(map[string][]string{"a": {"b", "b"}, "b": nil})
	if err != nil || !reflect.DeepEqual(order, []string{"b", "a"}) {
		t.Errorf("repeated dependency: %v, %v", order, err)
	}
}

// TestLoadOrderRandom: for random acyclic graphs the order respects every
// edge and is the same however the map was built.
func TestLoadOrderRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 200; iter++ {
		n := 1 + r.IntN(30)
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("m%03d", r.IntN(1000)*1000+i)
		}
		deps := map[string][]string{}
		for i, m := range names {
			deps[m] = nil
			for j := 0; j < i; j++ {
				if r.IntN(4) == 0 {
					deps[m] = append(deps[m], names[j])
				}
			}
		}
		a, err := LoadOrder(deps)
		if err != nil {
			t.Fatal(err)
		}
		checkOrder(t, deps, a)
		rebuilt := map[string][]string{}
		for _, i := range r.Perm(n) {
			rebuilt[names[i]] = deps[names[i]]
		}
		b, err := LoadOrder(rebuilt)
		if err != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("order differs between equal maps: %v vs %v (%v)", a, b, err)
		}
	}
}

func moduleNames(ms []Module) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

func TestResolveModulesFixture(t *testing.T) {
	ms, err := ResolveModules(fixtureModulesDir, fixtureRelease, []string{"tdx-guest", "sev-guest", "virtio_pci", "virtio-console"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := moduleNames(ms), []string{"configfs", "tsm", "sev_guest", "tdx_guest"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("order %v, want %v (virtio_pci and virtio_console are built in)", got, want)
	}
	files := []string{"configfs.ko", "tsm.ko.xz", "sev-guest.ko.zst", "tdx-guest.ko.gz"}
	for i, m := range ms {
		if m.File != files[i] || filepath.Base(m.Path) != files[i] || !strings.HasPrefix(m.Vermagic, fixtureRelease+" ") {
			t.Errorf("module %d: %+v", i, m)
		}
	}

	if _, err := ResolveModules(fixtureModulesDir, fixtureRelease, []string{"nosuchmod"}); err == nil || !strings.Contains(err.Error(), "nosuchmod not found") {
		t.Errorf("unknown module: %v", err)
	}
	if _, err := ResolveModules(fixtureModulesDir, "6.12.1-other", []string{"tsm"}); err == nil || !strings.Contains(err.Error(), `built for kernel "`+fixtureRelease+`"`) {
		t.Errorf("wrong release: %v", err)
	}
	if _, err := ResolveModules(filepath.Join(t.TempDir(), "none"), "", []string{"tsm"}); err == nil {
		t.Error("missing directory accepted")
	}
	if _, err := ResolveModules(fixtureModulesDir, "", []string{"../tsm"}); err == nil {
		t.Error("bad name accepted")
	}
}

func TestResolveModulesBrokenTrees(t *testing.T) {
	mk := func(files map[string][]byte) string {
		d := t.TempDir()
		for p, b := range files {
			if err := os.MkdirAll(filepath.Join(d, filepath.Dir(p)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, p), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	cyc := mk(map[string][]byte{
		"a.ko": fakeModule(modinfoFor("a", "b", "r")),
		"b.ko": fakeModule(modinfoFor("b", "a", "r")),
	})
	if _, err := ResolveModules(cyc, "r", []string{"a"}); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle: %v", err)
	}
	missing := mk(map[string][]byte{"a.ko": fakeModule(modinfoFor("a", "gone", "r"))})
	if _, err := ResolveModules(missing, "r", []string{"a"}); err == nil || !strings.Contains(err.Error(), "gone (needed by a)") {
		t.Errorf("missing dependency: %v", err)
	}
	dup := mk(map[string][]byte{
		"x/a-b.ko": fakeModule(modinfoFor("a_b", "", "r")),
		"y/a_b.ko": fakeModule(modinfoFor("a_b", "", "r")),
	})
	if _, err := ResolveModules(dup, "r", []string{"a-b"}); err == nil || !strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("ambiguous: %v", err)
	}
	renamed := mk(map[string][]byte{"a.ko": fakeModule(modinfoFor("b", "", "r"))})
	if _, err := ResolveModules(renamed, "r", []string{"a"}); err == nil || !strings.Contains(err.Error(), "name=b") {
		t.Errorf("name mismatch: %v", err)
	}
	corrupt := mk(map[string][]byte{"a.ko.xz": []byte("not xz")})
	if _, err := ResolveModules(corrupt, "r", []string{"a"}); err == nil || !strings.Contains(err.Error(), "decompressing") {
		t.Errorf("corrupt: %v", err)
	}
}

// requireInstalledKernel returns the installed Debian 6.12 cloud kernel, or
// skips; under CI=true a missing kernel fails the test.
func requireInstalledKernel(t *testing.T) *Kernel {
	t.Helper()
	k, err := DefaultKernel()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true needs the Debian 6.12 cloud kernel: %v", err)
		}
		t.Skip(err)
	}
	return k
}

// readModulesDep reads depmod's modules.dep: module → its transitive
// dependencies.
func readModulesDep(t *testing.T, dir string) map[string][]string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	name := func(p string) string {
		b, _ := moduleBaseName(path.Base(p))
		return normalizeModuleName(b)
	}
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		mod, deps, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var ds []string
		for _, d := range strings.Fields(deps) {
			ds = append(ds, name(d))
		}
		sort.Strings(ds)
		out[name(mod)] = ds
	}
	return out
}

// TestResolveModulesInstalled resolves the default module set against the
// installed Debian 6.12 cloud kernel and checks it against depmod's own
// modules.dep.
func TestResolveModulesInstalled(t *testing.T) {
	k := requireInstalledKernel(t)
	ms, err := ResolveModules(k.ModulesDir, k.Release, DefaultModules)
	if err != nil {
		t.Fatal(err)
	}
	got := moduleNames(ms)
	t.Logf("%s: load order %v", k.Release, got)
	pos := map[string]int{}
	for i, n := range got {
		pos[n] = i
	}
	for _, n := range []string{"configfs", "tsm", "sev_guest", "tdx_guest"} {
		if _, ok := pos[n]; !ok {
			t.Fatalf("%s missing from %v", n, got)
		}
	}
	if !(pos["configfs"] < pos["tsm"] && pos["tsm"] < pos["sev_guest"] && pos["tsm"] < pos["tdx_guest"]) {
		t.Errorf("order %v: want configfs, then tsm, then sev_guest and tdx_guest", got)
	}
	// Our transitive closure of depends= equals depmod's for every module.
	dep := readModulesDep(t, k.ModulesDir)
	byName := map[string]Module{}
	for _, m := range ms {
		byName[m.Name] = m
	}
	var closure func(n string, acc map[string]bool)
	closure = func(n string, acc map[string]bool) {
		for _, d := range byName[n].Depends {
			if !acc[d] {
				acc[d] = true
				closure(d, acc)
			}
		}
	}
	for _, m := range ms {
		acc := map[string]bool{}
		closure(m.Name, acc)
		var mine []string
		for d := range acc {
			mine = append(mine, d)
		}
		sort.Strings(mine)
		if theirs := dep[m.Name]; !reflect.DeepEqual(mine, theirs) && !(len(mine) == 0 && len(theirs) == 0) {
			t.Errorf("%s: dependencies %v, modules.dep says %v", m.Name, mine, theirs)
		}
		if !strings.HasSuffix(m.File, ".ko.xz") {
			t.Errorf("%s: file %s, Debian ships .ko.xz", m.Name, m.File)
		}
	}
}
