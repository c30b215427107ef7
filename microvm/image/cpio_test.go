package image

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func sampleEntries() []Entry {
	return []Entry{
		{Name: "tmp", Mode: ModeDir | 0o1777},
		{Name: "init", Mode: ModeRegular | 0o755, Data: []byte("#!init\x00\x01\x02")},
		{Name: "dev/console", Mode: ModeChar | 0o600, RdevMajor: 5, RdevMinor: 1},
		{Name: "dev", Mode: ModeDir | 0o755},
		{Name: "modules", Mode: ModeDir | 0o755},
		{Name: "modules/a.ko.xz", Mode: ModeRegular | 0o644, Data: bytes.Repeat([]byte{0xfd}, 4097)},
		{Name: "modules/order", Mode: ModeRegular | 0o644, Data: []byte("a.ko.xz\n")},
		{Name: "modules/empty", Mode: ModeRegular | 0o644},
		{Name: "bin", Mode: ModeDir | 0o755},
		{Name: "bin/sh", Mode: ModeSymlink | 0o777, Data: []byte("../init")},
	}
}

func TestArchiveRoundTrip(t *testing.T) {
	entries := sampleEntries()
	var a bytes.Buffer
	if err := WriteArchive(&a, entries); err != nil {
		t.Fatal(err)
	}
	if a.Len()%4 != 0 {
		t.Errorf("archive length %d is not a multiple of 4", a.Len())
	}
	recs, err := ReadArchive(bytes.NewReader(a.Bytes()), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(entries) {
		t.Fatalf("read %d records, wrote %d", len(recs), len(entries))
	}
	byName := map[string]Entry{}
	for _, e := range entries {
		byName[e.Name] = e
	}
	dirs := map[string]bool{}
	for i, r := range recs {
		if i > 0 && recs[i-1].Name >= r.Name {
			t.Errorf("record %d %q is not after %q", i, r.Name, recs[i-1].Name)
		}
		if p := filepath.Dir(r.Name); p != "." && !dirs[p] {
			t.Errorf("%q comes before its directory %q", r.Name, p)
		}
		if r.Mode&modeType == ModeDir {
			dirs[r.Name] = true
		}
		if r.Ino != uint32(i+1) || r.UID != 0 || r.GID != 0 || r.MTime != 0 || r.DevMajor != 0 || r.DevMinor != 0 {
			t.Errorf("%q: ino %d uid %d gid %d mtime %d dev %d:%d, want ino %d and zeros", r.Name, r.Ino, r.UID, r.GID, r.MTime, r.DevMajor, r.DevMinor, i+1)
		}
		want := byName[r.Name]
		if r.Entry.Name != want.Name || r.Mode != want.Mode || !bytes.Equal(r.Data, want.Data) || r.RdevMajor != want.RdevMajor || r.RdevMinor != want.RdevMinor {
			t.Errorf("record %q = %+v, want %+v", r.Name, r.Entry, want)
		}
	}

	// Order of the input does not matter.
	shuffled := append([]Entry(nil), entries...)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	var b bytes.Buffer
	if err := WriteArchive(&b, shuffled); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("archive depends on the order of the entries")
	}
}

// TestArchiveGNUCpio has GNU cpio, an independent newc reader, list the
// archive: names, types, device numbers, owners and sizes must be what was
// written.
func TestArchiveGNUCpio(t *testing.T) {
	cpio, err := exec.LookPath("cpio")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("cpio(1) is not installed (apt-get install cpio); CI=true requires it")
		}
		t.Skip("cpio(1) is not installed")
	}
	var a bytes.Buffer
	if err := WriteArchive(&a, sampleEntries()); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cpio, "-itv", "--numeric-uid-gid", "--quiet")
	cmd.Stdin = &a
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -itv: %v\n%s", err, out)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		// mode links uid gid size-or-"maj," [min] month day year name [-> target]
		if strings.HasPrefix(f[0], "c") {
			got = append(got, strings.Join([]string{f[0], f[2], f[3], f[4] + f[5], f[9]}, " "))
			continue
		}
		got = append(got, strings.Join([]string{f[0], f[2], f[3], f[4], strings.Join(f[8:], " ")}, " "))
	}
	want := []string{
		"drwxr-xr-x 0 0 0 bin",
		"lrwxrwxrwx 0 0 7 bin/sh -> ../init",
		"drwxr-xr-x 0 0 0 dev",
		"crw------- 0 0 5,1 dev/console",
		"-rwxr-xr-x 0 0 9 init",
		"drwxr-xr-x 0 0 0 modules",
		"-rw-r--r-- 0 0 4097 modules/a.ko.xz",
		"-rw-r--r-- 0 0 0 modules/empty",
		"-rw-r--r-- 0 0 8 modules/order",
		"drwxrwxrwt 0 0 0 tmp",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("cpio -itv lists\n%s\nwant\n%s\n(raw output:\n%s)", strings.Join(got, "\n"), strings.Join(want, "\n"), out)
	}
}

func TestWriteArchiveRejects(t *testing.T) {
	dir := Entry{Name: "d", Mode: ModeDir | 0o755}
	for _, tc := range []struct {
		name    string
		entries []Entry
		want    string
	}{
		{"absolute", []Entry{{Name: "/init", Mode: ModeRegular}}, "relative"},
		{"dot-dot", []Entry{{Name: "../x", Mode: ModeRegular}}, "leaves"},
		{"unclean", []Entry{dir, {Name: "d//x", Mode: ModeRegular}}, "not clean"},
		{"empty", []Entry{{Name: "", Mode: ModeRegular}}, "empty"},
		{"nul", []Entry{{Name: "a\x00b", Mode: ModeRegular}}, "NUL"},
		{"trailer", []Entry{{Name: "TRAILER!!!", Mode: ModeRegular}}, "reserved"},
		{"duplicate", []Entry{dir, dir}, "twice"},
		{"no parent", []Entry{{Name: "d/x", Mode: ModeRegular}}, "parent"},
		{"parent is a file", []Entry{{Name: "d", Mode: ModeRegular}, {Name: "d/x", Mode: ModeRegular}}, "parent"},
		{"fifo", []Entry{{Name: "p", Mode: 0o010644}}, "file type"},
		{"stray bits", []Entry{{Name: "p", Mode: ModeRegular | 0o200000}}, "bits"},
		{"dir data", []Entry{{Name: "d", Mode: ModeDir, Data: []byte{1}}}, "has data"},
		{"rdev on file", []Entry{{Name: "f", Mode: ModeRegular, RdevMajor: 1}}, "not a device"},
		{"long name", []Entry{{Name: strings.Repeat("a", maxNameSize), Mode: ModeRegular}}, "longer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			err := WriteArchive(&b, tc.entries)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("WriteArchive = %v, want an error containing %q", err, tc.want)
			}
			if b.Len() != 0 {
				t.Errorf("wrote %d bytes before failing", b.Len())
			}
		})
	}
}

func TestReadArchiveRejects(t *testing.T) {
	var good bytes.Buffer
	if err := WriteArchive(&good, sampleEntries()); err != nil {
		t.Fatal(err)
	}
	g := good.Bytes()
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), g...)) }
	for _, tc := range []struct {
		name string
		in   []byte
		max  int64
		want string
	}{
		{"empty", nil, 1 << 20, "unexpected EOF"},
		{"truncated", g[:len(g)-20], 1 << 20, "unexpected EOF"},
		{"no trailer", g[:len(g)-124], 1 << 20, "unexpected EOF"},
		{"crc magic", mut(func(b []byte) []byte { b[5] = '2'; return b }), 1 << 20, "magic"},
		{"bad hex", mut(func(b []byte) []byte { b[10] = 'x'; return b }), 1 << 20, "hex"},
		{"name size 0", mut(func(b []byte) []byte { copy(b[94:102], "00000000"); return b }), 1 << 20, "name size"},
		{"name not NUL-terminated", mut(func(b []byte) []byte { copy(b[94:102], "00000002"); return b }), 1 << 20, "NUL"},
		{"over limit", g, 100, "more than 100"},
		{"huge size", mut(func(b []byte) []byte {
			// the first entry is the directory "bin": claim 4 GiB of data
			copy(b[54:62], "FFFFFFFF")
			return b
		}), 1 << 40, "unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadArchive(bytes.NewReader(tc.in), tc.max)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ReadArchive = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// Bytes after the trailer (zero padding, another archive) are not read.
	recs, err := ReadArchive(io.MultiReader(bytes.NewReader(g), bytes.NewReader(make([]byte, 512))), 1<<20)
	if err != nil || len(recs) != len(sampleEntries()) {
		t.Errorf("archive with padding: %d records, %v", len(recs), err)
	}
}

// FuzzReadArchive: ReadArchive never panics or over-allocates, and whatever it
// accepts survives a write/read cycle: the entries that WriteArchive accepts
// come back with the same names, modes, device numbers and data.
func FuzzReadArchive(f *testing.F) {
	var a bytes.Buffer
	if err := WriteArchive(&a, sampleEntries()); err != nil {
		f.Fatal(err)
	}
	f.Add(a.Bytes())
	f.Fuzz(func(t *testing.T, in []byte) {
		recs, err := ReadArchive(bytes.NewReader(in), 1<<20)
		if err != nil {
			return
		}
		var total int
		entries := make([]Entry, len(recs))
		for i, r := range recs {
			entries[i] = r.Entry
			total += len(r.Data)
		}
		if total > len(in) {
			t.Fatalf("records hold %d bytes of data, the input is %d bytes", total, len(in))
		}
		var out bytes.Buffer
		if err := WriteArchive(&out, entries); err != nil {
			return // a valid newc archive need not be a valid Keep archive
		}
		back, err := ReadArchive(&out, 1<<20)
		if err != nil {
			t.Fatalf("re-reading our own archive: %v", err)
		}
		got := map[string]Entry{}
		for _, r := range back {
			got[r.Name] = r.Entry
		}
		for _, e := range entries {
			b := got[e.Name]
			if b.Mode != e.Mode || !bytes.Equal(b.Data, e.Data) || b.RdevMajor != e.RdevMajor || b.RdevMinor != e.RdevMinor {
				t.Fatalf("%q changed in a write/read cycle: %+v → %+v", e.Name, e, b)
			}
		}
	})
}
