package image

import (
	"bufio"
	"container/heap"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// DefaultModules are the modules the Keep loads on Debian's 6.12 cloud
// kernel, where they are built as modules (=m): the configfs-tsm attestation
// interface and the SEV-SNP and TDX guest drivers (each returns ENODEV on a
// machine that is not that TEE, which the guest takes as "not this TEE").
// virtio_pci and virtio_console, the channel's transport, are built in.
var DefaultModules = []string{"configfs", "tsm", "sev-guest", "tdx-guest"}

// Module is a kernel module chosen for the image.
type Module struct {
	// Name is the kernel's name for it ("sev_guest").
	Name string
	// File is its file name as stored under /modules ("sev-guest.ko.xz").
	File string
	// Path is where it was found on the host.
	Path string
	// Depends are the modules it needs loaded first (depends=).
	Depends []string
	// Vermagic is its vermagic= string.
	Vermagic string
}

// ResolveModules finds the named modules and everything they depend on
// (depends= in .modinfo, transitively) under modulesDir, usually
// /lib/modules/<release>, and returns them in load order: every module after
// its dependencies, ties broken by name. Names may use '-' or '_'.
//
// A named module that is listed in modulesDir/modules.builtin is part of the
// kernel and is left out. When release is not empty, every module's vermagic
// must be for that kernel release (a module built for another kernel would
// fail to load in the guest). Modules are read as they are stored: .ko,
// .ko.xz, .ko.zst or .ko.gz (decompressed here only to read .modinfo).
func ResolveModules(modulesDir, release string, names []string) ([]Module, error) {
	index, err := indexModules(modulesDir)
	if err != nil {
		return nil, err
	}
	builtin, err := readBuiltin(modulesDir)
	if err != nil {
		return nil, err
	}
	mods := make(map[string]*Module)
	var visit func(name, neededBy string) error
	visit = func(name, neededBy string) error {
		if _, done := mods[name]; done {
			return nil
		}
		paths := index[name]
		switch len(paths) {
		case 0:
			if neededBy != "" {
				return fmt.Errorf("module %s (needed by %s) not found under %s", name, neededBy, modulesDir)
			}
			return fmt.Errorf("module %s not found under %s and not built into the kernel (modules.builtin)", name, modulesDir)
		case 1:
		default:
			return fmt.Errorf("module %s is ambiguous under %s: %s", name, modulesDir, strings.Join(paths, ", "))
		}
		m, err := readModule(paths[0], name)
		if err != nil {
			return err
		}
		if release != "" && m.release() != release {
			return fmt.Errorf("module %s: built for kernel %q (vermagic %q), the kernel is %q; use the modules directory of that kernel",
				m.Path, m.release(), m.Vermagic, release)
		}
		mods[name] = m
		for _, d := range m.Depends {
			if err := visit(d, name); err != nil {
				return err
			}
		}
		return nil
	}
	for _, n := range names {
		n = normalizeModuleName(n)
		if !validModuleName(n) {
			return nil, fmt.Errorf("%q is not a module name", n)
		}
		if builtin[n] && len(index[n]) == 0 {
			continue
		}
		if err := visit(n, ""); err != nil {
			return nil, err
		}
	}
	deps := make(map[string][]string, len(mods))
	for n, m := range mods {
		deps[n] = m.Depends
	}
	order, err := LoadOrder(deps)
	if err != nil {
		return nil, err
	}
	out := make([]Module, len(order))
	for i, n := range order {
		out[i] = *mods[n]
	}
	return out, nil
}

func (m *Module) release() string { return vermagicRelease(m.Vermagic) }

// LoadOrder sorts modules so that each comes after everything it depends on.
// deps maps every module to its direct dependencies, each of which must be a
// key too. Among modules whose dependencies are all placed, the smallest name
// comes first, so the order is a function of deps alone. A dependency cycle
// is an error naming the modules on it.
func LoadOrder(deps map[string][]string) ([]string, error) {
	indeg := make(map[string]int, len(deps))
	users := make(map[string][]string, len(deps))
	for m, ds := range deps {
		seen := make(map[string]bool, len(ds))
		for _, d := range ds {
			if _, ok := deps[d]; !ok {
				return nil, fmt.Errorf("module %s depends on %s, which is not in the set", m, d)
			}
			if seen[d] {
				continue
			}
			seen[d] = true
			indeg[m]++
			users[d] = append(users[d], m)
		}
	}
	ready := &nameHeap{}
	for m := range deps {
		if indeg[m] == 0 {
			heap.Push(ready, m)
		}
	}
	order := make([]string, 0, len(deps))
	for ready.Len() > 0 {
		m := heap.Pop(ready).(string)
		order = append(order, m)
		for _, u := range users[m] {
			if indeg[u]--; indeg[u] == 0 {
				heap.Push(ready, u)
			}
		}
	}
	if len(order) != len(deps) {
		var stuck []string
		for m := range deps {
			if indeg[m] > 0 {
				stuck = append(stuck, m)
			}
		}
		sort.Strings(stuck)
		return nil, fmt.Errorf("module dependency cycle among: %s", strings.Join(stuck, ", "))
	}
	return order, nil
}

type nameHeap []string

func (h nameHeap) Len() int           { return len(h) }
func (h nameHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h nameHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *nameHeap) Push(x any)        { *h = append(*h, x.(string)) }
func (h *nameHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// indexModules maps every module name under dir to the files that hold it.
// Symlinks (build/, source/) are not followed.
func indexModules(dir string) (map[string][]string, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("kernel modules directory: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("kernel modules directory %s is not a directory", dir)
	}
	index := make(map[string][]string)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if base, ok := moduleBaseName(d.Name()); ok {
			n := normalizeModuleName(base)
			index[n] = append(index[n], p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing kernel modules: %w", err)
	}
	for _, ps := range index {
		sort.Strings(ps)
	}
	return index, nil
}

// readBuiltin reads modules.builtin (one path per built-in module, e.g.
// kernel/drivers/virtio/virtio_pci.ko); a missing file means none.
func readBuiltin(dir string) (map[string]bool, error) {
	f, err := os.Open(filepath.Join(dir, "modules.builtin"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading built-in module list: %w", err)
	}
	defer f.Close()
	out := make(map[string]bool)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if base, ok := moduleBaseName(path.Base(strings.TrimSpace(sc.Text()))); ok {
			out[normalizeModuleName(base)] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.Name(), err)
	}
	return out, nil
}

func readModule(p, name string) (*Module, error) {
	raw, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("reading module: %w", err)
	}
	ko, err := decompressModule(filepath.Base(p), raw)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", p, err)
	}
	mi, err := ReadModinfo(ko)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", p, err)
	}
	if mi.Name != "" && mi.Name != name {
		return nil, fmt.Errorf("module %s: .modinfo says name=%s, the file name says %s", p, mi.Name, name)
	}
	deps := make([]string, len(mi.Depends))
	for i, d := range mi.Depends {
		deps[i] = normalizeModuleName(d)
	}
	return &Module{Name: name, File: filepath.Base(p), Path: p, Depends: deps, Vermagic: mi.Vermagic}, nil
}
