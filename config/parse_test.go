package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func testCertPEM(t testing.TB) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// Upstream's unit test config (crates/enarx-config/src/lib.rs).
const upstreamMixed = `
        [[files]]
        kind = "stdin"

        [[files]]
        name = "X"
        kind = "listen"
        prot = "tcp"
        port = 9000

        [[files]]
        kind = "stdout"

        [[files]]
        kind = "null"

        [[files]]
        kind = "stderr"

        [[files]]
        kind = "connect"
        host = "example.com"
        prot = "tls"
`

func TestParseUpstreamValues(t *testing.T) {
	c, err := Parse("Enarx.toml", []byte(upstreamMixed))
	if err != nil {
		t.Fatal(err)
	}
	want := []File{
		{Kind: KindStdin, Name: "stdin"},
		{Kind: KindListen, Name: "X", Prot: ProtTCP, Port: 9000, Addr: "::"},
		{Kind: KindStdout, Name: "stdout"},
		{Kind: KindNull, Name: "null"},
		{Kind: KindStderr, Name: "stderr"},
		{Kind: KindConnect, Name: "example.com", Prot: ProtTLS, Port: 443, Host: "example.com", TLS: &TLSOptions{}},
	}
	if !reflect.DeepEqual(c.Files, want) {
		t.Fatalf("files:\n got %+v\nwant %+v", c.Files, want)
	}
	if got := strings.Join(c.FDNames(), ":"); got != "stdin:X:stdout:null:stderr:example.com" {
		t.Fatalf("FDNames = %q", got)
	}
}

// The example from upstream's Enarx_toml.md: FD_COUNT=5,
// FD_NAMES=null:stdout:stderr:listen:connect (names given explicitly here
// since the doc's LISTEN/CONNECT are upper case).
func TestParseFullExample(t *testing.T) {
	src := `# comment
steward = "https://steward.example.com"
args = ["--argument1", "--argument2=foo"]

[env]
VAR2 = "var2"
VAR1 = "var1"
ZED = "z"

[[files]]
kind = "null"

[[files]]
kind = "stdout"

[[files]]
kind = "stderr"

[[files]]
name = "listen"
kind = "listen"
prot = "tls" # or prot = "tcp"
port = 12345

[[files]]
name = "connect"
kind = "connect"
prot = "tcp" # or prot = "tls"
host = "127.0.0.1"
port = 23456
`
	c, err := Parse("Enarx.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if c.Steward != "https://steward.example.com" {
		t.Errorf("steward %q", c.Steward)
	}
	if !reflect.DeepEqual(c.Args, []string{"--argument1", "--argument2=foo"}) {
		t.Errorf("args %q", c.Args)
	}
	wantEnv := []EnvVar{{"VAR2", "var2"}, {"VAR1", "var1"}, {"ZED", "z"}}
	if !reflect.DeepEqual(c.Env, wantEnv) {
		t.Errorf("env %v, want file order %v", c.Env, wantEnv)
	}
	if got := strings.Join(c.FDNames(), ":"); got != "null:stdout:stderr:listen:connect" || len(c.Files) != 5 {
		t.Errorf("FD_NAMES %q count %d", got, len(c.Files))
	}
	l := c.Files[3]
	if l.Addr != "::" || l.Port != 12345 || l.Prot != ProtTLS || l.TLS == nil || l.TLS.ClientAuth != "none" {
		t.Errorf("listen %+v %+v", l, l.TLS)
	}
	if cn := c.Files[4]; cn.Host != "127.0.0.1" || cn.Port != 23456 || cn.TLS != nil {
		t.Errorf("connect %+v", cn)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings %q", c.Warnings)
	}
}

func TestParseDefaults(t *testing.T) {
	c, err := Parse("x", []byte(`
[[files]]
kind = "listen"
prot = "tcp"
name = "a"
[[files]]
kind = "listen"
prot = "tls"
name = "b"
[[files]]
kind = "connect"
prot = "tcp"
host = "localhost"
[[files]]
kind = "connect"
prot = "tls"
host = "h"
name = "n"
`))
	if err != nil {
		t.Fatal(err)
	}
	ports := []uint16{80, 443, 80, 443}
	for i, f := range c.Files {
		if f.Port != ports[i] {
			t.Errorf("files[%d].port = %d, want %d", i, f.Port, ports[i])
		}
	}
	if c.Files[2].Name != "localhost" || c.Files[3].Name != "n" {
		t.Errorf("names %q", c.FDNames())
	}
}

func TestParseEmptyFileHasNoFds(t *testing.T) {
	c, err := Parse("Enarx.toml", []byte("args = [\"a\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Files == nil || len(c.Files) != 0 {
		t.Fatalf("files = %#v, want empty non-nil", c.Files)
	}
	if d := Default(); len(d.Files) != 3 || d.FDNames()[2] != "stderr" {
		t.Fatalf("Default = %+v", d)
	}
}

func TestParseInlineForms(t *testing.T) {
	c, err := Parse("x", []byte(`env = { B = "1", A = "2" }
files = [ { kind = "stdin" }, { kind = "connect", prot = "tcp", host = "h", port = 1 } ]
`))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Env, []EnvVar{{"B", "1"}, {"A", "2"}}) || len(c.Files) != 2 {
		t.Fatalf("%+v", c)
	}
	// Dotted keys also keep order.
	c, err = Parse("x", []byte("env.Z = \"1\"\nenv.A = \"2\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Env, []EnvVar{{"Z", "1"}, {"A", "2"}}) {
		t.Fatalf("%+v", c.Env)
	}
}

func TestParseTLSExtensions(t *testing.T) {
	ca := testCertPEM(t)
	src := `[[files]]
kind = "listen"
name = "l"
prot = "tls"
client_auth = "ca"
alpn = ["h2", "http/1.1"]
client_ca = """
` + ca + `"""

[[files]]
kind = "connect"
prot = "tls"
host = "127.0.0.1"
server_name = "steward.example.com"
alpn = ["h2"]
ca = '''
` + ca + `'''
[[files]]
kind = "listen"
name = "s"
prot = "tls"
client_auth = "steward"
`
	c, err := Parse("Enarx.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	l, cn, s := c.Files[0].TLS, c.Files[1].TLS, c.Files[2].TLS
	if l.ClientAuth != "ca" || !strings.Contains(l.ClientCA, "BEGIN CERTIFICATE") || !reflect.DeepEqual(l.ALPN, []string{"h2", "http/1.1"}) {
		t.Errorf("listen TLS %+v", l)
	}
	if cn.ServerName != "steward.example.com" || !strings.Contains(cn.CA, "BEGIN CERTIFICATE") || cn.ALPN[0] != "h2" {
		t.Errorf("connect TLS %+v", cn)
	}
	if s.ClientAuth != "steward" {
		t.Errorf("steward TLS %+v", s)
	}
}

func TestParseErrors(t *testing.T) {
	ca := testCertPEM(t)
	cases := []struct {
		name, src, want string
	}{
		{"bad prot", "[[files]]\nkind = \"stdin\"\n\n[[files]]\nname = \"x\"\nkind = \"listen\"\nprot = \"udp\"\n",
			`Enarx.toml:7: files[1].prot: "udp" is not allowed; use "tcp" or "tls"`},
		{"missing prot", "[[files]]\nname = \"x\"\nkind = \"listen\"\n",
			`Enarx.toml:1: files[0]: missing field "prot" for kind = "listen"; use prot = "tcp" or prot = "tls"`},
		{"missing kind", "[[files]]\nname = \"x\"\n",
			`Enarx.toml:1: files[0]: missing field "kind"; use one of "null", "stdin", "stdout", "stderr", "listen", "connect"`},
		{"bad kind", "[[files]]\nkind = \"file\"\n",
			`Enarx.toml:2: files[0].kind: "file" is not allowed; use one of "null", "stdin", "stdout", "stderr", "listen", "connect", "dir"`},
		{"listen name required", "[[files]]\nkind = \"listen\"\nprot = \"tcp\"\n",
			`Enarx.toml:1: files[0]: missing field "name" (required for kind = "listen")`},
		{"connect host required", "[[files]]\nkind = \"connect\"\nprot = \"tcp\"\n",
			`Enarx.toml:1: files[0]: missing field "host" (required for kind = "connect")`},
		{"colon in name", "\n[[files]]\nname = \"test:\"\nkind = \"null\"\n",
			`Enarx.toml:3: files[0].name: "test:" must not contain ':' (FD_NAMES is ':'-separated)`},
		{"unknown field stdio", "[[files]]\nkind = \"stdin\"\nport = 1\n",
			`Enarx.toml:3: files[0].port: unknown field for kind = "stdin"; allowed fields are kind, name`},
		{"unknown field listen", "[[files]]\nkind = \"listen\"\nname = \"a\"\nprot = \"tcp\"\nhost = \"x\"\n",
			`Enarx.toml:5: files[0].host: unknown field for kind = "listen"; allowed fields are kind, name, prot, addr, port, client_auth, client_ca, alpn`},
		{"addr on connect", "[[files]]\nkind = \"connect\"\nhost = \"a\"\nprot = \"tcp\"\naddr = \"x\"\n",
			`Enarx.toml:5: files[0].addr: unknown field for kind = "connect"; allowed fields are kind, name, prot, host, port, ca, server_name, alpn`},
		{"port range", "[[files]]\nkind = \"connect\"\nhost = \"a\"\nprot = \"tcp\"\nport = 70000\n",
			`Enarx.toml:5: files[0].port: 70000 is out of range; use 1 to 65535`},
		{"port type", "[[files]]\nkind = \"connect\"\nhost = \"a\"\nprot = \"tcp\"\nport = \"80\"\n",
			`Enarx.toml:5: files[0].port: must be an integer, not a string`},
		{"tls option on tcp", "[[files]]\nkind = \"connect\"\nhost = \"a\"\nprot = \"tcp\"\nserver_name = \"x\"\n",
			`Enarx.toml:5: files[0].server_name: is only allowed with prot = "tls"`},
		{"bad client_auth", "[[files]]\nkind = \"listen\"\nname = \"a\"\nprot = \"tls\"\nclient_auth = \"maybe\"\n",
			`Enarx.toml:5: files[0].client_auth: "maybe" is not allowed; use "none", "steward" or "ca"`},
		{"ca without client_ca", "[[files]]\nkind = \"listen\"\nname = \"a\"\nprot = \"tls\"\nclient_auth = \"ca\"\n",
			`Enarx.toml:5: files[0].client_auth: "ca" needs client_ca = """-----BEGIN CERTIFICATE-----…""" (inline PEM)`},
		{"client_ca without ca", "[[files]]\nkind = \"listen\"\nname = \"a\"\nprot = \"tls\"\nclient_ca = '''\n" + ca + "'''\n",
			`Enarx.toml:5: files[0].client_ca: is only allowed with client_auth = "ca"`},
		{"bad pem", "[[files]]\nkind = \"connect\"\nhost = \"a\"\nprot = \"tls\"\nca = \"hello\"\n",
			`Enarx.toml:5: files[0].ca: contains text that is not a PEM certificate`},
		{"pem not cert", "[[files]]\nkind = \"connect\"\nhost = \"a\"\nprot = \"tls\"\nca = \"-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\\n\"\n",
			`Enarx.toml:5: files[0].ca: PEM block 1 is "PRIVATE KEY"; only CERTIFICATE blocks are allowed`},
		{"pem garbage cert", "[[files]]\nkind = \"connect\"\nhost = \"a\"\nprot = \"tls\"\nca = \"-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----\\n\"\n",
			`files[0].ca: PEM certificate 1 does not parse`},
		{"ipv6 host needs name", "[[files]]\nkind = \"connect\"\nhost = \"::1\"\nprot = \"tcp\"\n",
			`Enarx.toml:1: files[0]: missing field "name": the default name is the host, but "::1" contains ':' which FD_NAMES cannot carry`},
		{"http steward", "steward = \"http://x\"\n",
			`Enarx.toml:1: steward: "http://x" is not allowed: the Steward URL must use https`},
		{"relative steward", "steward = \"x\"\n",
			`Enarx.toml:1: steward: "x" is not an absolute URL`},
		{"args type", "\nargs = \"a\"\n", `Enarx.toml:2: args: must be an array of strings, not a string`},
		{"args elem type", "args = [\n\"a\",\n1]\n", `Enarx.toml:3: args[1]: must be a string, not an integer`},
		{"env value type", "[env]\nA = \"1\"\nB = 2\n", `Enarx.toml:3: env.B: must be a string, not an integer`},
		{"env subtable", "[env.X]\nA = \"1\"\n", `Enarx.toml:1: env.X: must be a string, not a table`},
		{"files not array", "files = \"x\"\n", `Enarx.toml:1: files: must be an array of tables ([[files]]), not a string`},
		{"files elem not table", "files = [1]\n", `Enarx.toml:1: files[0]: must be a table, not an integer`},
		{"syntax", "a = \n", `Enarx.toml:1: invalid TOML (column`},
		{"duplicate key", "args = []\nargs = []\n", `Enarx.toml:2: invalid TOML`},
		{"not utf8", "args = [\"\xff\"]\n", `Enarx.toml: file is not valid UTF-8`},
		{"hostile key quoted", "[[files]]\nkind = \"stdin\"\n\"\\u001b[31m\" = 1\n",
			`Enarx.toml:3: files[0]."\x1b[31m": unknown field`},
		{"inline table position", "files = [\n  { kind = \"stdin\" },\n  { kind = \"listen\", prot = \"udp\", name = \"x\" },\n]\n",
			`Enarx.toml:3: files[1].prot: "udp" is not allowed`},
		{"nul in name", "[[files]]\nkind = \"null\"\nname = \"a\\u0000\"\n", `Enarx.toml:3: files[0].name: must not contain a NUL character`},
		{"unknown key without kind", "[[files]]\nkin = \"stdin\"\n",
			`Enarx.toml:1: files[0]: missing field "kind" (unknown field "kin"); use one of`},
		{"file steward", "steward = \"file:///etc/steward\"\n",
			`Enarx.toml:1: steward: "file:///etc/steward" is not allowed: the Steward URL must use https (e.g. "https://steward.example.com"), not file`},
		{"steward without host", "steward = \"https:///x\"\n",
			`Enarx.toml:1: steward: "https:///x" has no host`},
		{"second BOM", "\uFEFFargs = []\n\uFEFFenv = {}\n",
			`Enarx.toml:2: invalid TOML (column 1): invalid character at start of key: U+FEFF (a byte order mark; only one at the very start of the file is allowed)`},
		{"non-ASCII key named by its rune", "\u00e9 = 1\n", `invalid character at start of key: U+00E9 'é'`},
		{"host with space", "[[files]]\nkind = \"connect\"\nprot = \"tcp\"\nhost = \"a b\"\n", `Enarx.toml:4: files[0].host: "a b": contains ' '`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("Enarx.toml", []byte(tc.src))
			if err == nil {
				t.Fatalf("no error; want %q", tc.want)
			}
			if !strings.HasPrefix(err.Error(), tc.want) && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error\n got %q\nwant %q", err, tc.want)
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.File != "Enarx.toml" {
				t.Fatalf("error %T does not carry the file name", err)
			}
		})
	}
}

// TestParseUpstreamParity: what upstream's TOML parser and Enarx.toml
// types accept, this parser accepts too.
func TestParseUpstreamParity(t *testing.T) {
	plain := "args = [\"a\"]\n[[files]]\nkind = \"stdin\"\n"
	want, err := Parse("Enarx.toml", []byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	// A UTF-8 byte order mark at the start.
	got, err := Parse("Enarx.toml", []byte("\uFEFF"+plain))
	if err != nil {
		t.Fatalf("BOM refused: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("with BOM %+v, without %+v", got, want)
	}
	// An empty connect host parses (the connection fails at start, in
	// hostio) and is warned about.
	c, err := Parse("Enarx.toml", []byte("[[files]]\nkind = \"connect\"\nprot = \"tcp\"\nname = \"up\"\nhost = \"\"\n"))
	if err != nil {
		t.Fatalf("empty host refused: %v", err)
	}
	if c.Files[0].Host != "" || len(c.Warnings) != 1 || c.Warnings[0] != "Enarx.toml:5: files[0].host: is empty: the connection will fail when the Keep starts" {
		t.Fatalf("empty host: %+v, warnings %q", c.Files[0], c.Warnings)
	}
}

// TestParseNoFilesWarns: a file without [[files]] gives the workload no
// fds (upstream's rule); that is rarely meant, so it is said.
func TestParseNoFilesWarns(t *testing.T) {
	for _, src := range []string{"args = [\"a\"]\n", "files = []\n", ""} {
		c, err := Parse("Enarx.toml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Files) != 0 || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "no [[files]]: the workload gets no stdin, stdout or stderr") {
			t.Fatalf("%q: files %v, warnings %q", src, c.Files, c.Warnings)
		}
	}
}

func TestParseUnknownTopLevelKeyWarns(t *testing.T) {
	c, err := Parse("Enarx.toml", []byte("[[files]]\nkind = \"stdin\"\n\n[[file]]\nkind = \"stdout\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 1 || c.Warnings[0] != "Enarx.toml:4: file: unknown key ignored; known keys are steward, steward_ca, args, env, files" {
		t.Fatalf("warnings %q", c.Warnings)
	}
}

func TestParseSizeLimit(t *testing.T) {
	big := make([]byte, maxSize+1)
	for i := range big {
		big[i] = '\n'
	}
	if _, err := Parse("big", big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err = %v", err)
	}
	src := strings.Repeat("[[files]]\nkind = \"null\"\n", maxFiles+1)
	if _, err := Parse("many", []byte(src)); err == nil || !strings.Contains(err.Error(), "maximum of 1024") {
		t.Fatalf("err = %v", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "Enarx.toml")
	if err := os.WriteFile(p, []byte("[[files]]\nkind = \"stdin\"\nprot = \"tcp\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+":3: files[0].prot: unknown field") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.toml")); err == nil || !strings.Contains(err.Error(), "missing.toml") {
		t.Fatalf("err = %v", err)
	}
}

// TestTemplate mirrors upstream's check_template: removing every "# "
// prefix must yield a valid config using every section.
func TestTemplate(t *testing.T) {
	c, err := Parse("template", []byte(Template))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.FDNames(), ":"); got != "stdin:stdout:stderr" {
		t.Fatalf("template fds %q", got)
	}
	lines := strings.Split(Template, "\n")
	for i, l := range lines {
		for strings.HasPrefix(l, "# ") {
			l = strings.TrimPrefix(l, "# ")
		}
		lines[i] = l
	}
	c, err = Parse("uncommented", []byte(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.FDNames(), ":"); got != "stdin:stdout:stderr:listen:stream" {
		t.Fatalf("fds %q", got)
	}
	if c.Steward != "https://attest.profian.com" || len(c.Args) != 2 || len(c.Env) != 2 || c.Files[3].Port != 12345 || c.Files[4].Host != "localhost" {
		t.Fatalf("uncommented template parsed to %+v", c)
	}
	if !strings.HasPrefix(Template, "## Configuration for a WASI application in an Enarx Keep\n\n## Arguments\n") ||
		!strings.HasSuffix(Template, "# host = \"localhost\"\n# port = 23456\n") {
		t.Fatal("template differs from upstream's CONFIG_TEMPLATE")
	}
}

func TestStewardCA(t *testing.T) {
	pemCert := testCertPEM(t)
	ok := "steward = \"https://localhost:3000\"\nsteward_ca = '''\n" + pemCert + "'''\n"
	c, err := Parse("Enarx.toml", []byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if c.StewardCA == "" {
		t.Fatal("steward_ca not kept")
	}
	for name, bad := range map[string]string{
		"without steward": "steward_ca = '''\n" + pemCert + "'''\n",
		"not PEM":         "steward = \"https://s\"\nsteward_ca = \"nope\"\n",
		"not a string":    "steward = \"https://s\"\nsteward_ca = 1\n",
	} {
		if _, err := Parse("Enarx.toml", []byte(bad)); err == nil || !strings.Contains(err.Error(), "steward_ca") {
			t.Errorf("%s: want an error naming steward_ca, got %v", name, err)
		}
	}
}
