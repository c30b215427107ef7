package image

import (
	"bytes"
	"reflect"
	"sort"
	"strings"
	"testing"
)

func TestParseModinfo(t *testing.T) {
	mi, err := ParseModinfo([]byte("alias=a\x00\x00license=GPL\x00alias=b\x00depends=virtio_ring,virtio_pci_modern_dev,virtio_pci_legacy_dev,virtio\x00" +
		"name=virtio_pci\x00vermagic=6.1.0-56-amd64 SMP preempt mod_unload modversions \x00parm=force_legacy:bool\x00\x00\x00"))
	if err != nil {
		t.Fatal(err)
	}
	if mi.Name != "virtio_pci" || mi.Release() != "6.1.0-56-amd64" {
		t.Errorf("name %q release %q", mi.Name, mi.Release())
	}
	if want := []string{"virtio_ring", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio"}; !reflect.DeepEqual(mi.Depends, want) {
		t.Errorf("depends %q, want %q", mi.Depends, want)
	}
	if want := []string{"a", "b"}; !reflect.DeepEqual(mi.Fields["alias"], want) {
		t.Errorf("alias %q, want %q", mi.Fields["alias"], want)
	}

	mi, err = ParseModinfo([]byte("depends=\x00name=configfs\x00"))
	if err != nil || len(mi.Depends) != 0 || mi.Release() != "" {
		t.Errorf("empty depends: %+v, %v", mi, err)
	}

	for _, bad := range []string{
		"license\x00",                     // no '='
		"=x\x00",                          // empty key
		"na me=x\x00",                     // key with a space
		"depends=a,,b\x00",                // empty module name
		"depends=a b\x00",                 // space in a module name
		"depends=a\x00depends=b\x00",      // twice
		"name=x\x00name=y\x00",            // twice
		"name=../x\x00",                   // not a module name
		"description=\xff\xfe\x00",        // not UTF-8
		"name=" + strings.Repeat("m", 56), // longer than MODULE_NAME_LEN-1
	} {
		if _, err := ParseModinfo([]byte(bad)); err == nil {
			t.Errorf("ParseModinfo(%q) accepted it", bad)
		}
	}
}

func TestReadModinfoELF(t *testing.T) {
	ko := fakeModule(modinfoFor("tsm", "configfs", "6.12.0-x"))
	mi, err := ReadModinfo(ko)
	if err != nil {
		t.Fatal(err)
	}
	if mi.Name != "tsm" || !reflect.DeepEqual(mi.Depends, []string{"configfs"}) || mi.Release() != "6.12.0-x" {
		t.Errorf("got %+v", mi)
	}
	for name, in := range map[string][]byte{
		"not ELF":       []byte("hello"),
		"executable":    fakeExecutable([]byte{0x90}, ""),
		"truncated":     ko[:len(ko)-10],
		"no modinfo":    bytes.Replace(ko, []byte(".modinfo"), []byte(".modinfX"), 1),
		"bad modinfo":   fakeModule([]byte("depends=a b\x00")),
		"section range": append(ko[:0:0], ko[:len(ko)-64*2+32]...),
	} {
		if _, err := ReadModinfo(in); err == nil {
			t.Errorf("%s: ReadModinfo accepted it", name)
		}
	}
}

func encodeModinfo(mi *Modinfo) []byte {
	keys := make([]string, 0, len(mi.Fields))
	for k := range mi.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for _, k := range keys {
		for _, v := range mi.Fields[k] {
			b.WriteString(k + "=" + v + "\x00")
		}
	}
	return b.Bytes()
}

// FuzzParseModinfo: ParseModinfo never panics; what it accepts has valid
// module names in Name and Depends, Depends is exactly depends= split at
// commas, and re-encoding the fields gives a section that parses to the same
// result (nothing is invented or lost).
func FuzzParseModinfo(f *testing.F) {
	f.Add(modinfoFor("sev_guest", "tsm", "6.12.118+deb12-cloud-amd64"))
	f.Add([]byte("depends=virtio_ring,virtio\x00name=virtio_pci\x00alias=pci:v00001AF4d*sv*sd*bc*sc*i*\x00"))
	f.Add([]byte("\x00\x00license=GPL\x00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		mi, err := ParseModinfo(in)
		if err != nil {
			return
		}
		if mi.Name != "" && !validModuleName(mi.Name) {
			t.Fatalf("invalid name %q accepted", mi.Name)
		}
		for _, d := range mi.Depends {
			if !validModuleName(d) {
				t.Fatalf("invalid dependency %q accepted", d)
			}
		}
		if d := mi.Fields["depends"]; len(d) == 1 && strings.Join(mi.Depends, ",") != d[0] {
			t.Fatalf("Depends %q is not depends=%q split at commas", mi.Depends, d[0])
		}
		again, err := ParseModinfo(encodeModinfo(mi))
		if err != nil {
			t.Fatalf("re-encoded section rejected: %v", err)
		}
		if !reflect.DeepEqual(mi, again) {
			t.Fatalf("re-encoded section parses differently:\n%+v\n%+v", mi, again)
		}
	})
}

// FuzzReadModinfo: ReadModinfo never panics on arbitrary bytes, and whatever
// it reads from an ELF file is what ParseModinfo makes of the same section
// placed in a fresh module file.
func FuzzReadModinfo(f *testing.F) {
	f.Add(fakeModule(modinfoFor("configfs", "", "6.12.0")))
	f.Add(fakeExecutable([]byte{0xc3}, "/lib64/ld-linux-x86-64.so.2"))
	f.Fuzz(func(t *testing.T, in []byte) {
		mi, err := ReadModinfo(in)
		if err != nil {
			return
		}
		again, err := ReadModinfo(fakeModule(encodeModinfo(mi)))
		if err != nil || !reflect.DeepEqual(mi, again) {
			t.Fatalf("re-packed module reads differently: %v\n%+v\n%+v", err, mi, again)
		}
	})
}

// FuzzParseKernelRelease: ParseKernelRelease never panics, and a release it
// returns is 1 to 64 printable, space-free ASCII bytes found verbatim in the
// input.
func FuzzParseKernelRelease(f *testing.F) {
	f.Add(fakeBzImage("6.12.118+deb12-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP", nil))
	f.Add(fakeBzImage("", nil))
	f.Add([]byte("HdrS"))
	f.Fuzz(func(t *testing.T, in []byte) {
		rel, err := ParseKernelRelease(in)
		if err != nil {
			return
		}
		if len(rel) == 0 || len(rel) > 64 || strings.ContainsAny(rel, " \x00") || !bytes.Contains(in, []byte(rel)) {
			t.Fatalf("release %q", rel)
		}
		for _, c := range []byte(rel) {
			if c < 0x21 || c > 0x7e {
				t.Fatalf("release %q has byte %#x", rel, c)
			}
		}
	})
}
