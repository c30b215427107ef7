package config

import (
	"fmt"
	"path"
	"strconv"
	"strings"
)

// sourceFields lists the keys of a kind = "dir" entry that only some
// sources accept, and which.
var sourceFields = map[string][]Source{
	"host_path":   {SourceHost, SourceSealed},
	"size":        {SourceMemory},
	"key":         {SourceSealed},
	"min_version": {SourceSealed},
	"volume_id":   {SourceSealed},
}

// VolumeIDLen is the length of a volume_id: the hexadecimal digits of a
// sealed volume's 16-byte id, lowercase, as the Keep logs it.
const VolumeIDLen = 32

// maxGuestPath bounds guest_path (WASI's path limit in the Keep).
const maxGuestPath = 4096

// dir reads a kind = "dir" entry's fields into f (extension: a preopened
// directory).
func (e *entry) dir(f *File, hasName bool) error {
	d := &DirOptions{}
	gp, ok, err := e.str("guest_path")
	if err != nil {
		return err
	}
	switch {
	case !ok:
		return e.p.errf(e.base, "missing field \"guest_path\" (required for kind = \"dir\": the path the workload sees, e.g. \"/data\")")
	case gp == "":
		return e.p.errf(e.field("guest_path"), "must not be empty; use e.g. \"/\" or \"/data\"")
	case len(gp) > maxGuestPath:
		return e.p.errf(e.field("guest_path"), "is longer than %d bytes", maxGuestPath)
	}
	for _, r := range gp {
		if r < 0x20 || r == 0x7f {
			return e.p.errf(e.field("guest_path"), "%q contains a control character", gp)
		}
	}
	d.GuestPath = gp
	if !hasName {
		if strings.Contains(gp, ":") {
			return e.p.errf(e.base, "missing field \"name\": the default name is guest_path, but %q contains ':' which FD_NAMES cannot carry", gp)
		}
		f.Name = gp
	}

	src, ok, err := e.str("source")
	if err != nil {
		return err
	}
	if !ok {
		return e.p.errf(e.base, "missing field \"source\" (required for kind = \"dir\"); use \"memory\", \"host\" or \"sealed\"")
	}
	switch Source(src) {
	case SourceMemory, SourceHost, SourceSealed:
		d.Source = Source(src)
	default:
		return e.p.errf(e.field("source"), "%q is not allowed; use \"memory\" (Keep-private, in memory), \"host\" (a host directory, plaintext, untrusted) or \"sealed\" (a host directory holding ciphertext)", src)
	}
	for _, k := range e.keys {
		if allowed, ok := sourceFields[k]; ok && !containsSource(allowed, d.Source) {
			return e.p.errf(e.field(k), "is not allowed with source = %q (only with source = %s)", src, quoteSources(allowed))
		}
	}

	if v, ok := e.m["readonly"]; ok {
		b, isBool := v.(bool)
		if !isBool {
			return e.p.errf(e.field("readonly"), "must be a boolean (true or false), not %s", typeName(v))
		}
		d.ReadOnly = b
	}
	switch d.Source {
	case SourceMemory:
		d.Size = DefaultDirSize
		if v, ok := e.m["size"]; ok {
			n, err := dirSize(v)
			if err != nil {
				return e.p.errf(e.field("size"), "%v", err)
			}
			d.Size = n
		}
	case SourceHost, SourceSealed:
		hp, ok, err := e.str("host_path")
		if err != nil {
			return err
		}
		if !ok {
			return e.p.errf(e.base, "missing field \"host_path\" (required for source = %q: the host directory's absolute path)", src)
		}
		if !strings.HasPrefix(hp, "/") {
			return e.p.errf(e.field("host_path"), "%q is not an absolute path; use e.g. \"/var/lib/app\"", hp)
		}
		d.HostPath = hp
	}
	if d.Source == SourceSealed {
		if err := e.sealed(d); err != nil {
			return err
		}
	}
	f.Dir = d
	return nil
}

// sealed reads a sealed entry's key, min_version and volume_id.
func (e *entry) sealed(d *DirOptions) error {
	key, ok, err := e.str("key")
	if err != nil {
		return err
	}
	if !ok {
		return e.p.errf(e.base, "missing field \"key\" (required for source = \"sealed\"); use key = \"snp\" (derived by the SEV-SNP firmware) or key = \"file:/path/to/32-byte-key\" (development only)")
	}
	switch {
	case key == KeySNP:
	case strings.HasPrefix(key, KeyFilePrefix):
		p := strings.TrimPrefix(key, KeyFilePrefix)
		if !strings.HasPrefix(p, "/") || path.Clean(p) == "/" {
			return e.p.errf(e.field("key"), "%q: the key file must be an absolute path, e.g. \"file:/etc/enarx/volume.key\"", key)
		}
	default:
		return e.p.errf(e.field("key"), "%q is not a key source; use \"snp\" or \"file:/path/to/32-byte-key\"", key)
	}
	d.Key = key
	if v, ok := e.m["min_version"]; ok {
		n, isInt := v.(int64)
		if !isInt || n < 0 {
			return e.p.errf(e.field("min_version"), "must be a non-negative integer (the lowest volume version accepted), not %s", describe(v))
		}
		d.MinVersion = uint64(n)
	}
	if v, ok := e.m["volume_id"]; ok {
		id, isStr := v.(string)
		if !isStr {
			return e.p.errf(e.field("volume_id"), "must be a string of %d lowercase hexadecimal digits (the volume id the Keep logs as volume_id), not %s", VolumeIDLen, typeName(v))
		}
		if err := checkVolumeID(id); err != nil {
			return e.p.errf(e.field("volume_id"), "%v; copy the volume_id the Keep logs at open (\"sealed volume opened\")", err)
		}
		d.VolumeID = id
	}
	return nil
}

// checkVolumeID checks that id is VolumeIDLen lowercase hexadecimal
// digits.
func checkVolumeID(id string) error {
	if len(id) != VolumeIDLen {
		return fmt.Errorf("is %d characters long, not %d hexadecimal digits (a 16-byte volume id)", len(id), VolumeIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("%q has %q at position %d: only lowercase hexadecimal digits (0-9, a-f) are allowed", id, rune(c), i+1)
		}
	}
	return nil
}

// describe names v's type, or its value for a negative integer.
func describe(v any) string {
	if n, ok := v.(int64); ok {
		return strconv.FormatInt(n, 10)
	}
	return typeName(v)
}

// dirSize reads a memory directory's size: a positive integer of bytes or
// a string with a binary suffix ("64MiB", "1G").
func dirSize(v any) (uint64, error) {
	var n uint64
	switch x := v.(type) {
	case int64:
		if x <= 0 {
			return 0, fmt.Errorf("%d is not a positive number of bytes", x)
		}
		n = uint64(x)
	case string:
		t := strings.TrimSpace(x)
		mult := uint64(1)
		for _, u := range []struct {
			suf string
			m   uint64
		}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1}} {
			if strings.HasSuffix(t, u.suf) {
				t, mult = strings.TrimSuffix(t, u.suf), u.m
				break
			}
		}
		c, err := strconv.ParseUint(strings.TrimSpace(t), 10, 64)
		if err != nil || c == 0 {
			return 0, fmt.Errorf("%q is not a size; use a positive number of bytes, or e.g. \"64MiB\" or \"1GiB\"", x)
		}
		if c > MaxDirSize/mult {
			return 0, fmt.Errorf("%q is more than the maximum of 1TiB", x)
		}
		n = c * mult
	default:
		return 0, fmt.Errorf("must be a number of bytes or a string such as \"64MiB\", not %s", typeName(v))
	}
	if n > MaxDirSize {
		return 0, fmt.Errorf("%d bytes is more than the maximum of 1TiB", n)
	}
	return n, nil
}

// checkDirs refuses two dir entries with one guest path, however each
// spells it (guestDir: the workload could not tell which it opens), and
// two sealed volumes with one name (the name is mixed into a volume's
// keys: under one key source, two volumes of one name would each open
// the other's directory, so the host could swap them unnoticed), and warns of a dir entry that the usual
// preopen scans miss: wasi-libc's, Rust's and Go's start at fd 3 and stop
// at the first fd that is not a preopened directory.
func (p *parser) checkDirs(files []File) error {
	seen := map[string]int{}
	sealedNames := map[string]int{} // name → sealed entry
	hostPaths := map[string]int{}   // cleaned host_path → entry
	scanned := true                 // fds 3..i-1 are all dirs
	for i, f := range files {
		if f.Dir == nil {
			if i >= 3 {
				scanned = false
			}
			continue
		}
		if i < 3 || !scanned {
			p.warnings = append(p.warnings, p.errf("files"+indexSeg(i), "the dir entry is fd %d, where wasi-libc, Rust and Go do not look for "+
				"preopened directories (they scan from fd 3 up to the first fd that is not one); put dir entries right after stdin, stdout and stderr", i).Error())
		}
		gp := guestDir(f.Dir.GuestPath)
		if j, dup := seen[gp]; dup {
			if files[j].Dir.GuestPath == f.Dir.GuestPath {
				return p.errf("files"+indexSeg(i)+".guest_path", "%q is already the guest_path of files[%d]; each dir entry needs its own", f.Dir.GuestPath, j)
			}
			return p.errf("files"+indexSeg(i)+".guest_path", "%q and the guest_path %q of files[%d] are one directory, %q, to the workload (its libc gives paths under it to whichever entry it prefers); each dir entry needs its own",
				f.Dir.GuestPath, files[j].Dir.GuestPath, j, gp)
		}
		seen[gp] = i
		if f.Dir.Source == SourceSealed {
			if j, dup := sealedNames[f.Name]; dup {
				return p.errf("files"+indexSeg(i)+".name", "%q is also the name of the sealed volume files[%d]; the name is mixed into a volume's keys, so each sealed volume needs its own", f.Name, j)
			}
			sealedNames[f.Name] = i
		}
		if f.Dir.HostPath == "" {
			continue
		}
		hp := path.Clean(f.Dir.HostPath)
		if j, dup := hostPaths[hp]; dup && (f.Dir.Source == SourceSealed || files[j].Dir.Source == SourceSealed) {
			return p.errf("files"+indexSeg(i)+".host_path", "%q is also the host_path of files[%d]; a sealed volume needs a host directory of its own", f.Dir.HostPath, j)
		}
		hostPaths[hp] = i
	}
	return nil
}

// guestDir is the directory a guest_path names to the workload. The
// preopen lookups of wasi-libc (so C and Rust) and Go's wasip1 runtime
// do not compare it as written: wasi-libc drops leading "/" and "./"
// ("/data", "//data", "./data" and "data" are one prefix, and the entry
// registered last wins), and in both a longer prefix matching the same
// paths wins, so "/data/" takes every path under "/data" from "/data".
// To the workload they are one directory, whichever entry its libc
// picks. guestDir is the lexically clean absolute form, the same for all
// of them. (It also merges spellings with "." or ".." inside,
// "/a/../data", which a libc may keep apart; refusing such a pair too
// costs no real configuration.)
func guestDir(gp string) string { return path.Clean("/" + gp) }

func containsSource(list []Source, s Source) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func quoteSources(list []Source) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(string(s))
	}
	return strings.Join(q, " or ")
}
