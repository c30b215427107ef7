package image

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
)

// maxModuleSize bounds a decompressed kernel module (the largest in Debian's
// 6.12 trees are around 20 MB uncompressed, amdgpu aside).
const maxModuleSize = 256 << 20

// Modinfo is the parsed .modinfo section of a kernel module: NUL-separated
// key=value strings that modpost and MODULE_*() macros put there.
type Modinfo struct {
	// Name is the module name (name=), e.g. "sev_guest" for sev-guest.ko.
	Name string
	// Depends lists the modules that must be loaded first (depends=), in the
	// order modpost wrote them.
	Depends []string
	// Vermagic is the vermagic= string; it starts with the kernel release the
	// module was built for.
	Vermagic string
	// Fields holds every key with its values in section order (keys such as
	// alias= and parm= repeat).
	Fields map[string][]string
}

// ParseModinfo parses the contents of a .modinfo ELF section. Entries are
// separated by one or more NULs (the linker pads between them); each must be
// key=value with a non-empty key of letters, digits, '_' or '.', and values
// must be valid UTF-8 without NUL (the section is text). name= and depends=
// may appear at most once; names in depends= must be valid module names.
func ParseModinfo(b []byte) (*Modinfo, error) {
	mi := &Modinfo{Fields: make(map[string][]string)}
	for _, ent := range bytes.Split(b, []byte{0}) {
		if len(ent) == 0 {
			continue
		}
		k, v, ok := strings.Cut(string(ent), "=")
		if !ok {
			return nil, fmt.Errorf("modinfo: entry %.60q has no '='", ent)
		}
		if !validModinfoKey(k) {
			return nil, fmt.Errorf("modinfo: entry %.60q has an invalid key", ent)
		}
		if !isText(v) {
			return nil, fmt.Errorf("modinfo: %s= value is not UTF-8 text", k)
		}
		mi.Fields[k] = append(mi.Fields[k], v)
	}
	for _, k := range []string{"name", "depends", "vermagic"} {
		if len(mi.Fields[k]) > 1 {
			return nil, fmt.Errorf("modinfo: %s= appears %d times", k, len(mi.Fields[k]))
		}
	}
	if n := mi.Fields["name"]; len(n) == 1 {
		if !validModuleName(n[0]) {
			return nil, fmt.Errorf("modinfo: name=%q is not a module name", n[0])
		}
		mi.Name = n[0]
	}
	if d := mi.Fields["depends"]; len(d) == 1 && d[0] != "" {
		for _, dep := range strings.Split(d[0], ",") {
			if !validModuleName(dep) {
				return nil, fmt.Errorf("modinfo: depends=%q: %q is not a module name", d[0], dep)
			}
			mi.Depends = append(mi.Depends, dep)
		}
	}
	if v := mi.Fields["vermagic"]; len(v) == 1 {
		mi.Vermagic = v[0]
	}
	return mi, nil
}

// Release returns the kernel release the module was built for: the first
// word of vermagic=, or "" when the module has none.
func (m *Modinfo) Release() string { return vermagicRelease(m.Vermagic) }

func vermagicRelease(v string) string {
	if f := strings.Fields(v); len(f) > 0 {
		return f[0]
	}
	return ""
}

func validModinfoKey(k string) bool {
	if k == "" {
		return false
	}
	for _, c := range []byte(k) {
		if !(c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// validModuleName accepts what the kernel's module names are made of
// (KBUILD_MODNAME: C identifier characters, and '-' in file names).
func validModuleName(n string) bool {
	if n == "" || len(n) > 55 { // MODULE_NAME_LEN - 1 on 64-bit
		return false
	}
	for _, c := range []byte(n) {
		if !(c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

func isText(s string) bool {
	return strings.ToValidUTF8(s, "\uFFFD") == s && !strings.ContainsRune(s, 0)
}

// normalizeModuleName maps a module or file name to the kernel's spelling:
// '-' becomes '_' (sev-guest.ko holds module sev_guest).
func normalizeModuleName(n string) string { return strings.ReplaceAll(n, "-", "_") }

// ReadModinfo reads the .modinfo section of an uncompressed ELF kernel module.
func ReadModinfo(ko []byte) (*Modinfo, error) {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return nil, fmt.Errorf("not an ELF file: %w", err)
	}
	defer f.Close()
	if f.Type != elf.ET_REL {
		return nil, fmt.Errorf("ELF type %v, a kernel module is ET_REL", f.Type)
	}
	s := f.Section(".modinfo")
	if s == nil {
		return nil, errors.New("no .modinfo section")
	}
	if s.Flags&elf.SHF_COMPRESSED != 0 {
		return nil, errors.New(".modinfo section is compressed (SHF_COMPRESSED); kernel modules never are")
	}
	if s.Type == elf.SHT_NOBITS || s.Size > uint64(len(ko)) {
		return nil, fmt.Errorf(".modinfo section size %d is not in the file", s.Size)
	}
	data, err := s.Data()
	if err != nil {
		return nil, fmt.Errorf("reading .modinfo: %w", err)
	}
	return ParseModinfo(data)
}

// moduleExtensions are the file name endings of kernel modules. The
// kernel's finit_module(MODULE_INIT_COMPRESSED_FILE) understands the same
// three compressions (CONFIG_MODULE_DECOMPRESS).
var moduleExtensions = []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"}

// decompressors holds the decompressor of each compressed module
// extension: gzip from the standard library; xz and zstd once package
// microvm/image/kmodcomp registers them. They are not linked in here
// because every program that finds images (enarx itself, and so every
// sandbox Keep process, which is the enarx binary) would run their
// package initialisers at start for nothing (0.7 ms on the VM we measure
// on); only what builds images reads modules.
var decompressors = struct {
	sync.RWMutex
	m map[string]func(io.Reader) (io.Reader, error)
}{m: map[string]func(io.Reader) (io.Reader, error){
	".ko":    func(r io.Reader) (io.Reader, error) { return r, nil },
	".ko.gz": func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) },
}}

// RegisterDecompressor sets the decompressor for modules whose file names
// end in ext, one of ".ko.xz" and ".ko.zst" (see kmodcomp.Register): d
// returns the decompressed contents of a module file.
func RegisterDecompressor(ext string, d func(io.Reader) (io.Reader, error)) {
	if !slices.Contains(moduleExtensions, ext) || ext == ".ko" {
		panic("image: RegisterDecompressor: not a compressed module extension: " + ext)
	}
	decompressors.Lock()
	defer decompressors.Unlock()
	decompressors.m[ext] = d
}

// moduleBaseName returns the file name without its module extension, or ok
// false when the name is not a kernel module file.
func moduleBaseName(file string) (base string, ok bool) {
	for _, ext := range moduleExtensions {
		if b, found := strings.CutSuffix(file, ext); found && b != "" {
			return b, true
		}
	}
	return "", false
}

// decompressModule returns the ELF bytes of a module file's contents,
// choosing the decompressor by the file name's extension.
func decompressModule(file string, raw []byte) ([]byte, error) {
	for _, ext := range moduleExtensions {
		if !strings.HasSuffix(file, ext) {
			continue
		}
		decompressors.RLock()
		d := decompressors.m[ext]
		decompressors.RUnlock()
		if d == nil {
			return nil, fmt.Errorf("%s: no %s decompressor in this program (it must import microvm/image/kmodcomp and call its Register)", file, ext)
		}
		r, err := d(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("decompressing %s: %w", file, err)
		}
		if c, ok := r.(io.Closer); ok {
			defer c.Close()
		}
		out, err := io.ReadAll(io.LimitReader(r, maxModuleSize+1))
		if err != nil {
			return nil, fmt.Errorf("decompressing %s: %w", file, err)
		}
		if len(out) > maxModuleSize {
			return nil, fmt.Errorf("decompressing %s: more than %d bytes", file, maxModuleSize)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: not a kernel module file name (want .ko, .ko.xz, .ko.zst or .ko.gz)", file)
}
