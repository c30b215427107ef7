package config

import (
	"reflect"
	"strings"
	"testing"
)

const dirStdio = "[[files]]\nkind = \"stdin\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \"stderr\"\n"

func TestParseDir(t *testing.T) {
	in := dirStdio + `
[[files]]
name = "scratch"
kind = "dir"
guest_path = "/tmp"
source = "memory"
size = "16MiB"

[[files]]
kind = "dir"
guest_path = "/"
source = "host"
host_path = "/srv/app"
readonly = true

[[files]]
name = "db"
kind = "dir"
guest_path = "/data"
source = "sealed"
host_path = "/var/lib/app"
key = "file:/etc/enarx/volume.key"
min_version = 7
volume_id = "0123456789abcdef00112233445566ff"

[[files]]
kind = "dir"
guest_path = "mem"
source = "memory"
size = 4096

[[files]]
kind = "dir"
guest_path = "/snp"
source = "sealed"
host_path = "/v"
key = "snp"
`
	c, err := Parse("Enarx.toml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []*DirOptions{
		{GuestPath: "/tmp", Source: SourceMemory, Size: 16 << 20},
		{GuestPath: "/", Source: SourceHost, HostPath: "/srv/app", ReadOnly: true},
		{GuestPath: "/data", Source: SourceSealed, HostPath: "/var/lib/app", Key: "file:/etc/enarx/volume.key", MinVersion: 7, VolumeID: "0123456789abcdef00112233445566ff"},
		{GuestPath: "mem", Source: SourceMemory, Size: 4096},
		{GuestPath: "/snp", Source: SourceSealed, HostPath: "/v", Key: KeySNP},
	}
	if len(c.Files) != 8 {
		t.Fatalf("%d files", len(c.Files))
	}
	for i, w := range want {
		f := c.Files[3+i]
		if f.Kind != KindDir || !reflect.DeepEqual(f.Dir, w) {
			t.Errorf("files[%d] = %+v %+v, want %+v", 3+i, f, f.Dir, w)
		}
	}
	if got := strings.Join(c.FDNames(), ":"); got != "stdin:stdout:stderr:scratch:/:db:mem:/snp" {
		t.Errorf("FD_NAMES %q", got)
	}
	for i := 0; i < 3; i++ {
		if c.Files[i].Dir != nil {
			t.Errorf("files[%d] has dir options", i)
		}
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings %q", c.Warnings)
	}
	// The default size, and readonly = false.
	c, err = Parse("Enarx.toml", []byte("[[files]]\nkind = \"dir\"\nguest_path = \"/\"\nsource = \"memory\"\nreadonly = false\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Files[0].Dir; d.Size != DefaultDirSize || d.ReadOnly || c.Files[0].Name != "/" {
		t.Errorf("defaults: %+v %+v", c.Files[0], d)
	}
}

// TestParseDirErrors: each mistake is refused with the line and field it
// is on, and says what to write instead.
func TestParseDirErrors(t *testing.T) {
	entry := func(lines ...string) string {
		return dirStdio + "\n[[files]]\nkind = \"dir\"\n" + strings.Join(lines, "\n") + "\n"
	}
	// dirStdio is 6 lines; the entry's header is line 8, kind line 9, its
	// first field line 10.
	cases := []struct {
		name, in, want string
	}{
		{"no guest_path", entry(`source = "memory"`),
			`Enarx.toml:8: files[3]: missing field "guest_path"`},
		{"empty guest_path", entry(`guest_path = ""`, `source = "memory"`),
			`Enarx.toml:10: files[3].guest_path: must not be empty`},
		{"control in guest_path", entry(`guest_path = "/a\nb"`, `source = "memory"`),
			`Enarx.toml:10: files[3].guest_path: "/a\nb" contains a control character`},
		{"colon without name", entry(`guest_path = "c:/x"`, `source = "memory"`),
			`Enarx.toml:8: files[3]: missing field "name": the default name is guest_path, but "c:/x" contains ':'`},
		{"no source", entry(`guest_path = "/"`),
			`Enarx.toml:8: files[3]: missing field "source" (required for kind = "dir"); use "memory", "host" or "sealed"`},
		{"bad source", entry(`guest_path = "/"`, `source = "disk"`),
			`Enarx.toml:11: files[3].source: "disk" is not allowed; use "memory"`},
		{"source not a string", entry(`guest_path = "/"`, `source = 1`),
			`Enarx.toml:11: files[3].source: must be a string, not an integer`},
		{"unknown field", entry(`guest_path = "/"`, `source = "memory"`, `path = "/x"`),
			`Enarx.toml:12: files[3].path: unknown field for kind = "dir"; allowed fields are kind, name, guest_path, source, host_path, readonly, size, key, min_version, volume_id`},
		{"host_path on memory", entry(`guest_path = "/"`, `source = "memory"`, `host_path = "/x"`),
			`Enarx.toml:12: files[3].host_path: is not allowed with source = "memory" (only with source = "host" or "sealed")`},
		{"size on host", entry(`guest_path = "/"`, `source = "host"`, `host_path = "/x"`, `size = 10`),
			`Enarx.toml:13: files[3].size: is not allowed with source = "host" (only with source = "memory")`},
		{"key on host", entry(`guest_path = "/"`, `source = "host"`, `host_path = "/x"`, `key = "snp"`),
			`Enarx.toml:13: files[3].key: is not allowed with source = "host" (only with source = "sealed")`},
		{"min_version on memory", entry(`guest_path = "/"`, `source = "memory"`, `min_version = 1`),
			`Enarx.toml:12: files[3].min_version: is not allowed with source = "memory" (only with source = "sealed")`},
		{"no host_path", entry(`guest_path = "/"`, `source = "host"`),
			`Enarx.toml:8: files[3]: missing field "host_path" (required for source = "host"`},
		{"relative host_path", entry(`guest_path = "/"`, `source = "host"`, `host_path = "data"`),
			`Enarx.toml:12: files[3].host_path: "data" is not an absolute path`},
		{"readonly not bool", entry(`guest_path = "/"`, `source = "memory"`, `readonly = "yes"`),
			`Enarx.toml:12: files[3].readonly: must be a boolean (true or false), not a string`},
		{"zero size", entry(`guest_path = "/"`, `source = "memory"`, `size = 0`),
			`Enarx.toml:12: files[3].size: 0 is not a positive number of bytes`},
		{"bad size unit", entry(`guest_path = "/"`, `source = "memory"`, `size = "64 parsecs"`),
			`Enarx.toml:12: files[3].size: "64 parsecs" is not a size; use a positive number of bytes, or e.g. "64MiB" or "1GiB"`},
		{"huge size", entry(`guest_path = "/"`, `source = "memory"`, `size = "2TiB"`),
			`Enarx.toml:12: files[3].size: "2TiB" is more than the maximum of 1TiB`},
		{"size float", entry(`guest_path = "/"`, `source = "memory"`, `size = 1.5`),
			`Enarx.toml:12: files[3].size: must be a number of bytes or a string such as "64MiB", not a float`},
		{"sealed without key", entry(`guest_path = "/"`, `source = "sealed"`, `host_path = "/v"`),
			`Enarx.toml:8: files[3]: missing field "key" (required for source = "sealed"); use key = "snp"`},
		{"unknown key source", entry(`guest_path = "/"`, `source = "sealed"`, `host_path = "/v"`, `key = "kms:foo"`),
			`Enarx.toml:13: files[3].key: "kms:foo" is not a key source; use "snp" or "file:/path/to/32-byte-key"`},
		{"relative key file", entry(`guest_path = "/"`, `source = "sealed"`, `host_path = "/v"`, `key = "file:volume.key"`),
			`Enarx.toml:13: files[3].key: "file:volume.key": the key file must be an absolute path`},
		{"negative min_version", entry(`guest_path = "/"`, `source = "sealed"`, `host_path = "/v"`, `key = "snp"`, `min_version = -1`),
			`Enarx.toml:14: files[3].min_version: must be a non-negative integer (the lowest volume version accepted), not -1`},
		{"volume_id on host", entry(`guest_path = "/"`, `source = "host"`, `host_path = "/x"`, `volume_id = "0123456789abcdef0123456789abcdef"`),
			`Enarx.toml:13: files[3].volume_id: is not allowed with source = "host" (only with source = "sealed")`},
		{"volume_id on memory", entry(`guest_path = "/"`, `source = "memory"`, `volume_id = "0123456789abcdef0123456789abcdef"`),
			`Enarx.toml:12: files[3].volume_id: is not allowed with source = "memory" (only with source = "sealed")`},
		{"volume_id bad hex", entry(`guest_path = "/"`, `source = "sealed"`, `host_path = "/v"`, `key = "snp"`, `volume_id = "0123456789abcdef0123456789abcdeg"`),
			`Enarx.toml:14: files[3].volume_id: "0123456789abcdef0123456789abcdeg" has 'g' at position 32: only lowercase hexadecimal digits (0-9, a-f) are allowed; copy the volume_id the Keep logs at open`},
		{"volume_id uppercase", entry(`guest_path = "/"`, `source = "sealed"`, `host_path = "/v"`, `key = "snp"`, `volume_id = "0123456789ABCDEF0123456789abcdef"`),
			`Enarx.toml:14: files[3].volume_id: "0123456789ABCDEF0123456789abcdef" has 'A' at position 11: only lowercase hexadecimal digits`},
		{"volume_id short", entry(`guest_path = "/"`, `source = "sealed"`, `host_path = "/v"`, `key = "snp"`, `volume_id = "0123456789abcdef"`),
			`Enarx.toml:14: files[3].volume_id: is 16 characters long, not 32 hexadecimal digits (a 16-byte volume id)`},
		{"volume_id long", entry(`guest_path = "/"`, `source = "sealed"`, `host_path = "/v"`, `key = "snp"`, `volume_id = "0123456789abcdef0123456789abcdef00"`),
			`Enarx.toml:14: files[3].volume_id: is 34 characters long, not 32 hexadecimal digits`},
		{"volume_id empty", entry(`guest_path = "/"`, `source = "sealed"`, `host_path = "/v"`, `key = "snp"`, `volume_id = ""`),
			`Enarx.toml:14: files[3].volume_id: is 0 characters long`},
		{"volume_id not a string", entry(`guest_path = "/"`, `source = "sealed"`, `host_path = "/v"`, `key = "snp"`, `volume_id = 12`),
			`Enarx.toml:14: files[3].volume_id: must be a string of 32 lowercase hexadecimal digits (the volume id the Keep logs as volume_id), not an integer`},
		{"duplicate guest_path", dirStdio + "[[files]]\nkind = \"dir\"\nname = \"a\"\nguest_path = \"/d\"\nsource = \"memory\"\n" +
			"[[files]]\nkind = \"dir\"\nname = \"b\"\nguest_path = \"/d\"\nsource = \"memory\"\n",
			`Enarx.toml:15: files[4].guest_path: "/d" is already the guest_path of files[3]`},
		// Spelt apart, one directory to the workload: wasi-libc and Go
		// give every path under /d to the longer prefix "/d/" (here the
		// plaintext host directory, not the sealed one), wasi-libc reads
		// "d" and "//d" as "/d". Before, only equal strings were refused.
		{"guest_path with a trailing slash", dirStdio + "[[files]]\nkind = \"dir\"\nname = \"a\"\nguest_path = \"/d\"\nsource = \"sealed\"\nhost_path = \"/v\"\nkey = \"snp\"\n" +
			"[[files]]\nkind = \"dir\"\nname = \"b\"\nguest_path = \"/d/\"\nsource = \"host\"\nhost_path = \"/w\"\n",
			`Enarx.toml:17: files[4].guest_path: "/d/" and the guest_path "/d" of files[3] are one directory, "/d", to the workload`},
		{"guest_path relative", dirStdio + "[[files]]\nkind = \"dir\"\nname = \"a\"\nguest_path = \"/d\"\nsource = \"memory\"\n" +
			"[[files]]\nkind = \"dir\"\nname = \"b\"\nguest_path = \"./d\"\nsource = \"memory\"\n",
			`Enarx.toml:15: files[4].guest_path: "./d" and the guest_path "/d" of files[3] are one directory`},
		{"guest_path double slash", dirStdio + "[[files]]\nkind = \"dir\"\nname = \"a\"\nguest_path = \"//\"\nsource = \"memory\"\n" +
			"[[files]]\nkind = \"dir\"\nname = \"b\"\nguest_path = \"/\"\nsource = \"memory\"\n",
			`Enarx.toml:15: files[4].guest_path: "/" and the guest_path "//" of files[3] are one directory, "/"`},
		{"sealed host_path shared", dirStdio + "[[files]]\nkind = \"dir\"\nname = \"a\"\nguest_path = \"/a\"\nsource = \"host\"\nhost_path = \"/v/\"\n" +
			"[[files]]\nkind = \"dir\"\nname = \"b\"\nguest_path = \"/b\"\nsource = \"sealed\"\nhost_path = \"/v\"\nkey = \"snp\"\n",
			`Enarx.toml:18: files[4].host_path: "/v" is also the host_path of files[3]; a sealed volume needs a host directory of its own`},
		// The name is mixed into a sealed volume's keys: two volumes of
		// one name (and key) would open each other's directory, so the
		// host could swap them unnoticed.
		{"sealed name shared", dirStdio + "[[files]]\nkind = \"dir\"\nname = \"db\"\nguest_path = \"/a\"\nsource = \"sealed\"\nhost_path = \"/v\"\nkey = \"snp\"\n" +
			"[[files]]\nkind = \"dir\"\nname = \"db\"\nguest_path = \"/b\"\nsource = \"sealed\"\nhost_path = \"/w\"\nkey = \"snp\"\n",
			`Enarx.toml:16: files[4].name: "db" is also the name of the sealed volume files[3]`},
		{"sealed name is another's default", dirStdio + "[[files]]\nkind = \"dir\"\nguest_path = \"/a\"\nsource = \"sealed\"\nhost_path = \"/v\"\nkey = \"file:/k\"\n" +
			"[[files]]\nkind = \"dir\"\nname = \"/a\"\nguest_path = \"/b\"\nsource = \"sealed\"\nhost_path = \"/w\"\nkey = \"file:/k\"\n",
			`Enarx.toml:15: files[4].name: "/a" is also the name of the sealed volume files[3]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("Enarx.toml", []byte(c.in))
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Fatalf("got %v\nwant %s…", err, c.want)
			}
		})
	}
}

// TestParseDirScanWarning: a dir entry the preopen scans of wasi-libc,
// Rust and Go would miss is accepted with a warning naming its line.
func TestParseDirScanWarning(t *testing.T) {
	dir := "[[files]]\nkind = \"dir\"\nguest_path = \"/d\"\nsource = \"memory\"\n"
	for _, c := range []struct {
		name, in string
		warn     string
	}{
		{"after stdio", dirStdio + dir, ""},
		{"two after stdio", dirStdio + dir + strings.Replace(dir, "/d", "/e", 1), ""},
		{"as fd 0", dir, "Enarx.toml:1: files[0]: the dir entry is fd 0, where wasi-libc, Rust and Go do not look"},
		{"after a socket", dirStdio + "[[files]]\nkind = \"null\"\n" + dir, "Enarx.toml:9: files[4]: the dir entry is fd 4"},
	} {
		cfg, err := Parse("Enarx.toml", []byte(c.in))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if c.warn == "" && len(cfg.Warnings) != 0 || c.warn != "" && (len(cfg.Warnings) != 1 || !strings.HasPrefix(cfg.Warnings[0], c.warn)) {
			t.Errorf("%s: warnings %q, want %q", c.name, cfg.Warnings, c.warn)
		}
	}
}

// TestParseDirUpstreamKind: kind = "dir" is ours; the error for an unknown
// kind lists it with upstream's.
func TestParseDirKindListed(t *testing.T) {
	_, err := Parse("Enarx.toml", []byte("[[files]]\nkind = \"directory\"\n"))
	if err == nil || !strings.Contains(err.Error(), `"connect", "dir"`) {
		t.Fatal(err)
	}
}
