package config

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2"
)

// maxSize is the largest Enarx.toml accepted, in bytes. Real files are a few
// hundred bytes; inline PEM certificates make them a few kilobytes.
const maxSize = 1 << 20

// maxFiles is the largest number of [[files]] entries accepted.
const maxFiles = 1024

// Error is a configuration error. It names the file, the line (0 when
// unknown), the field path (e.g. "files[1].prot") and what is wrong.
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads and parses the Enarx.toml at path. Errors name path.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading workload config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading workload config %s: %w", path, err)
	}
	return Parse(path, data)
}

// Parse parses and validates an Enarx.toml. name is used in error messages
// (usually the file's path). A present file without [[files]] yields a
// Config with no files (upstream behaviour); use Default for "no file".
func Parse(name string, data []byte) (*Config, error) {
	if len(data) > maxSize {
		return nil, &Error{File: name, Msg: fmt.Sprintf("file is larger than %d bytes", maxSize)}
	}
	if !utf8.Valid(data) {
		return nil, &Error{File: name, Msg: "file is not valid UTF-8"}
	}
	// A byte order mark at the start is accepted, as upstream's TOML
	// parser accepts it (editors on Windows write one). The digest the Keep
	// reports is still of the file's bytes, BOM included.
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	if err := checkShape(name, data); err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			msg := fixRuneName(strings.TrimPrefix(de.Error(), "toml: "), data, row, col)
			return nil, &Error{File: name, Line: row, Msg: fmt.Sprintf("invalid TOML (column %d): %s", col, msg)}
		}
		return nil, &Error{File: name, Msg: "invalid TOML: " + err.Error()}
	}
	pos, err := scanPositions(data)
	if err != nil {
		// The decoder accepted the document; the position scanner should
		// too. Report rather than panic if they ever disagree.
		return nil, &Error{File: name, Msg: err.Error()}
	}
	p := &parser{name: name, pos: pos}
	return p.config(doc)
}

// fixRuneName corrects go-toml's name for a non-ASCII character: it names
// the first byte ("U+00EF 'ï'" for a byte order mark, U+FEFF). row and col
// (1-based, col in bytes) locate the character in data.
func fixRuneName(msg string, data []byte, row, col int) string {
	off := 0
	for r := 1; r < row; r++ {
		i := bytes.IndexByte(data[off:], '\n')
		if i < 0 {
			return msg
		}
		off += i + 1
	}
	off += col - 1
	if off < 0 || off >= len(data) || data[off] < utf8.RuneSelf {
		return msg
	}
	r, size := utf8.DecodeRune(data[off:])
	if r == utf8.RuneError || size < 2 {
		return msg
	}
	wrong := fmt.Sprintf("%U '%c'", rune(data[off]), rune(data[off]))
	right := fmt.Sprintf("%U", r)
	if unicode.IsPrint(r) {
		right += " '" + string(r) + "'"
	}
	if r == '\uFEFF' {
		right += " (a byte order mark; only one at the very start of the file is allowed)"
	}
	return strings.Replace(msg, wrong, right, 1)
}

type parser struct {
	name     string
	pos      *positions
	warnings []string // from [[files]] entries, in file order
}

func (p *parser) errf(field, format string, args ...any) error {
	return &Error{File: p.name, Line: p.pos.line(field), Field: field, Msg: fmt.Sprintf(format, args...)}
}

var topLevelKeys = []string{"steward", "steward_ca", "args", "env", "files"}

func (p *parser) config(doc map[string]any) (*Config, error) {
	c := &Config{Files: []File{}}
	// Upstream ignores unknown top-level keys (no deny_unknown_fields on
	// Config); so do we, but say so: a misspelt "file" or "environment"
	// would otherwise silently do nothing.
	var unknown []string
	for k := range doc {
		if !contains(topLevelKeys, k) {
			unknown = append(unknown, k)
		}
	}
	sort.Slice(unknown, func(i, j int) bool { return p.pos.line(quoteKey(unknown[i])) < p.pos.line(quoteKey(unknown[j])) })
	for _, k := range unknown {
		f := quoteKey(k)
		c.Warnings = append(c.Warnings, (&Error{File: p.name, Line: p.pos.line(f), Field: f,
			Msg: "unknown key ignored; known keys are steward, steward_ca, args, env, files"}).Error())
	}

	if v, ok := doc["steward"]; ok {
		s, err := p.steward(v)
		if err != nil {
			return nil, err
		}
		c.Steward = s
	}
	if v, ok := doc["steward_ca"]; ok {
		s, isStr := v.(string)
		switch {
		case !isStr:
			return nil, p.errf("steward_ca", "must be a string of inline PEM certificates, not %s", typeName(v))
		case c.Steward == "":
			return nil, p.errf("steward_ca", "only makes sense with steward = \"https://…\"")
		}
		if err := checkPEMCerts(s); err != nil {
			return nil, p.errf("steward_ca", "%v", err)
		}
		c.StewardCA = s
	}
	if v, ok := doc["args"]; ok {
		args, err := p.stringArray("args", v, true)
		if err != nil {
			return nil, err
		}
		c.Args = args
	}
	if v, ok := doc["env"]; ok {
		env, err := p.env(v)
		if err != nil {
			return nil, err
		}
		c.Env = env
	}
	if v, ok := doc["files"]; ok {
		arr, ok := v.([]any)
		if !ok {
			return nil, p.errf("files", "must be an array of tables ([[files]]), not %s", typeName(v))
		}
		if len(arr) > maxFiles {
			return nil, p.errf("files", "%d entries is more than the maximum of %d", len(arr), maxFiles)
		}
		for i, e := range arr {
			f, err := p.file(i, e)
			if err != nil {
				return nil, err
			}
			c.Files = append(c.Files, f)
		}
		if err := p.checkDirs(c.Files); err != nil {
			return nil, err
		}
	}
	c.Warnings = append(c.Warnings, p.warnings...)
	if len(c.Files) == 0 {
		// Upstream's rule, but rarely what is meant.
		c.Warnings = append(c.Warnings, (&Error{File: p.name, Line: p.pos.line("files"), Field: "files",
			Msg: "no [[files]]: the workload gets no stdin, stdout or stderr (no fds at all); " +
				"add [[files]] kind = \"stdin\" / \"stdout\" / \"stderr\" entries, or run without an Enarx.toml for those three"}).Error())
	}
	return c, nil
}

func (p *parser) steward(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", p.errf("steward", "must be a string (an https URL), not %s", typeName(v))
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Scheme == "":
		return "", p.errf("steward", "%q is not an absolute URL; use e.g. \"https://steward.example.com\"", s)
	case u.Scheme != "https":
		return "", p.errf("steward", "%q is not allowed: the Steward URL must use https (e.g. \"https://steward.example.com\"), not %s", s, u.Scheme)
	case u.Host == "":
		return "", p.errf("steward", "%q has no host; use e.g. \"https://steward.example.com\"", s)
	}
	if u.User != nil {
		return "", p.errf("steward", "must not contain credentials")
	}
	return s, nil
}

func (p *parser) stringArray(field string, v any, allowEmptyElems bool) ([]string, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, p.errf(field, "must be an array of strings, not %s", typeName(v))
	}
	out := make([]string, 0, len(arr))
	for i, e := range arr {
		f := field + indexSeg(i)
		s, ok := e.(string)
		if !ok {
			return nil, p.errf(f, "must be a string, not %s", typeName(e))
		}
		if strings.IndexByte(s, 0) >= 0 {
			return nil, p.errf(f, "must not contain a NUL character")
		}
		if !allowEmptyElems && s == "" {
			return nil, p.errf(f, "must not be empty")
		}
		out = append(out, s)
	}
	return out, nil
}

func (p *parser) env(v any) ([]EnvVar, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, p.errf("env", "must be a table of strings ([env] NAME = \"value\"), not %s", typeName(v))
	}
	// File order comes from the position scan; it lists exactly the keys
	// of m (both were produced from the same document).
	order := p.pos.envOrder
	if len(order) != len(m) {
		order = order[:0:0]
		for k := range m {
			order = append(order, k)
		}
		sort.Strings(order)
	}
	out := make([]EnvVar, 0, len(m))
	for _, k := range order {
		val, present := m[k]
		f := "env." + quoteKey(k)
		if !present {
			return nil, p.errf(f, "internal error: key order mismatch")
		}
		s, ok := val.(string)
		if !ok {
			return nil, p.errf(f, "must be a string, not %s", typeName(val))
		}
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, p.errf(f, "is not a valid environment variable name (it must be non-empty without '=' or NUL)")
		}
		if strings.IndexByte(s, 0) >= 0 {
			return nil, p.errf(f, "must not contain a NUL character")
		}
		out = append(out, EnvVar{Name: k, Value: s})
	}
	return out, nil
}

var kinds = []string{"null", "stdin", "stdout", "stderr", "listen", "connect", "dir"}

// allowedFields lists the keys each kind accepts (upstream: one serde
// variant per kind, each with deny_unknown_fields), plus our TLS
// extensions, which are further restricted to prot = "tls".
var allowedFields = map[Kind][]string{
	KindNull:    {"kind", "name"},
	KindStdin:   {"kind", "name"},
	KindStdout:  {"kind", "name"},
	KindStderr:  {"kind", "name"},
	KindListen:  {"kind", "name", "prot", "addr", "port", "client_auth", "client_ca", "alpn"},
	KindConnect: {"kind", "name", "prot", "host", "port", "ca", "server_name", "alpn"},
	KindDir:     {"kind", "name", "guest_path", "source", "host_path", "readonly", "size", "key", "min_version", "volume_id"},
}

var tlsOnlyFields = []string{"client_auth", "client_ca", "alpn", "ca", "server_name"}

// entry is one [[files]] table being parsed.
type entry struct {
	p    *parser
	base string // "files[i]"
	m    map[string]any
	// keys are m's keys in file order.
	keys []string
}

// field is the path of key k of the entry ("files[1].prot").
func (e *entry) field(k string) string { return e.base + "." + quoteKey(k) }

// str returns the string at key k, whether it is present, and an error if
// it is present but not a string without NUL.
func (e *entry) str(k string) (string, bool, error) {
	v, ok := e.m[k]
	if !ok {
		return "", false, nil
	}
	s, isStr := v.(string)
	if !isStr {
		return "", true, e.p.errf(e.field(k), "must be a string, not %s", typeName(v))
	}
	if strings.IndexByte(s, 0) >= 0 {
		return "", true, e.p.errf(e.field(k), "must not contain a NUL character")
	}
	return s, true, nil
}

func (p *parser) file(i int, v any) (File, error) {
	base := "files" + indexSeg(i)
	m, ok := v.(map[string]any)
	if !ok {
		return File{}, p.errf(base, "must be a table, not %s", typeName(v))
	}
	e := &entry{p: p, base: base, m: m}
	kind, err := e.kind()
	if err != nil {
		return File{}, err
	}
	f := File{Kind: kind}
	if err := e.checkFields(kind); err != nil {
		return File{}, err
	}
	name, hasName, err := e.str("name")
	if err != nil {
		return File{}, err
	}
	if hasName {
		if strings.Contains(name, ":") {
			return File{}, p.errf(e.field("name"), "%q must not contain ':' (FD_NAMES is ':'-separated)", name)
		}
		f.Name = name
	}
	switch kind {
	case KindNull, KindStdin, KindStdout, KindStderr:
		if !hasName {
			f.Name = string(kind)
		}
		return f, nil
	case KindDir:
		if err := e.dir(&f, hasName); err != nil {
			return File{}, err
		}
		return f, nil
	}
	if err := e.socket(&f, hasName); err != nil {
		return File{}, err
	}
	return f, nil
}

// kind reads the entry's required kind.
func (e *entry) kind() (Kind, error) {
	kindStr, ok, err := e.str("kind")
	if err != nil {
		return "", err
	}
	if !ok {
		var unknown []string
		for k := range e.m {
			if k != "name" {
				unknown = append(unknown, strconv.Quote(k))
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return "", e.p.errf(e.base, "missing field \"kind\" (unknown field %s); use one of %s", strings.Join(unknown, ", "), quoteList(kinds))
		}
		return "", e.p.errf(e.base, "missing field \"kind\"; use one of %s", quoteList(kinds))
	}
	if !contains(kinds, kindStr) {
		return "", e.p.errf(e.field("kind"), "%q is not allowed; use one of %s", kindStr, quoteList(kinds))
	}
	return Kind(kindStr), nil
}

// checkFields puts the entry's keys in file order and refuses the first
// that kind does not accept.
func (e *entry) checkFields(kind Kind) error {
	e.keys = make([]string, 0, len(e.m))
	for k := range e.m {
		e.keys = append(e.keys, k)
	}
	sort.Slice(e.keys, func(a, b int) bool { return e.p.pos.line(e.field(e.keys[a])) < e.p.pos.line(e.field(e.keys[b])) })
	for _, k := range e.keys {
		if !contains(allowedFields[kind], k) {
			return e.p.errf(e.field(k), "unknown field for kind = %q; allowed fields are %s",
				string(kind), strings.Join(allowedFields[kind], ", "))
		}
	}
	return nil
}

// socket reads the fields of a listen or connect entry into f.
func (e *entry) socket(f *File, hasName bool) error {
	if err := e.protPort(f); err != nil {
		return err
	}
	if f.Prot != ProtTLS {
		for _, k := range e.keys {
			if contains(tlsOnlyFields, k) {
				return e.p.errf(e.field(k), "is only allowed with prot = \"tls\"")
			}
		}
	}
	var err error
	switch f.Kind {
	case KindListen:
		err = e.listen(f, hasName)
	case KindConnect:
		err = e.connect(f, hasName)
	}
	if err != nil {
		return err
	}
	if f.Prot == ProtTLS {
		if f.TLS, err = e.tlsOptions(f.Kind); err != nil {
			return err
		}
	}
	return nil
}

// protPort reads the required prot and the port (by default the
// protocol's).
func (e *entry) protPort(f *File) error {
	prot, ok, err := e.str("prot")
	if err != nil {
		return err
	}
	if !ok {
		return e.p.errf(e.base, "missing field \"prot\" for kind = %q; use prot = \"tcp\" or prot = \"tls\"", string(f.Kind))
	}
	switch Prot(prot) {
	case ProtTCP:
		f.Port = 80
	case ProtTLS:
		f.Port = 443
	default:
		return e.p.errf(e.field("prot"), "%q is not allowed; use \"tcp\" or \"tls\"", prot)
	}
	f.Prot = Prot(prot)
	pv, ok := e.m["port"]
	if !ok {
		return nil
	}
	n, isInt := pv.(int64)
	if !isInt {
		return e.p.errf(e.field("port"), "must be an integer, not %s", typeName(pv))
	}
	if n < 0 || n > 65535 || (n == 0 && f.Kind == KindConnect) {
		lo := 0
		if f.Kind == KindConnect {
			lo = 1
		}
		return e.p.errf(e.field("port"), "%d is out of range; use %d to 65535", n, lo)
	}
	f.Port = uint16(n)
	return nil
}

// listen reads a listen entry's address; its name is required.
func (e *entry) listen(f *File, hasName bool) error {
	if !hasName {
		return e.p.errf(e.base, "missing field \"name\" (required for kind = \"listen\")")
	}
	f.Addr = "::"
	a, ok, err := e.str("addr")
	if err != nil || !ok {
		return err
	}
	if err := checkHost(a); err != nil {
		return e.p.errf(e.field("addr"), "%q: %v", a, err)
	}
	f.Addr = a
	return nil
}

// connect reads a connect entry's required host, which is also its
// default name.
func (e *entry) connect(f *File, hasName bool) error {
	h, ok, err := e.str("host")
	if err != nil {
		return err
	}
	if !ok {
		return e.p.errf(e.base, "missing field \"host\" (required for kind = \"connect\")")
	}
	// An empty host parses, as upstream (its connect then fails at start
	// with "failed to connect to endpoint"); hostio refuses it with the
	// same words before dialling, since Go would dial the local system for
	// an empty host.
	if h == "" {
		e.p.warnings = append(e.p.warnings, e.p.errf(e.field("host"), "is empty: the connection will fail when the Keep starts").Error())
	} else if err := checkHost(h); err != nil {
		return e.p.errf(e.field("host"), "%q: %v", h, err)
	}
	f.Host = h
	if !hasName {
		// Upstream defaults the name to the host, which breaks FD_NAMES
		// for IPv6 literals; require a name there instead.
		if strings.Contains(h, ":") {
			return e.p.errf(e.base, "missing field \"name\": the default name is the host, but %q contains ':' which FD_NAMES cannot carry", h)
		}
		f.Name = h
	}
	return nil
}

// tlsOptions reads the TLS fields of a listen or connect entry.
func (e *entry) tlsOptions(kind Kind) (*TLSOptions, error) {
	t := &TLSOptions{}
	if v, ok := e.m["alpn"]; ok {
		alpn, err := e.p.stringArray(e.field("alpn"), v, false)
		if err != nil {
			return nil, err
		}
		for i, a := range alpn {
			if len(a) > 255 {
				return nil, e.p.errf(e.field("alpn")+indexSeg(i), "is longer than 255 bytes")
			}
		}
		t.ALPN = alpn
	}
	if kind == KindListen {
		return t, e.listenTLS(t)
	}
	return t, e.connectTLS(t)
}

// listenTLS reads client_auth and client_ca.
func (e *entry) listenTLS(t *TLSOptions) error {
	t.ClientAuth = "none"
	ca, ok, err := e.str("client_auth")
	if err != nil {
		return err
	}
	if ok {
		switch ca {
		case "none", "steward", "ca":
			t.ClientAuth = ca
		default:
			return e.p.errf(e.field("client_auth"), "%q is not allowed; use \"none\", \"steward\" or \"ca\"", ca)
		}
	}
	pemStr, hasPEM, err := e.str("client_ca")
	if err != nil {
		return err
	}
	switch {
	case t.ClientAuth == "ca" && !hasPEM:
		return e.p.errf(e.field("client_auth"), "\"ca\" needs client_ca = \"\"\"-----BEGIN CERTIFICATE-----…\"\"\" (inline PEM)")
	case t.ClientAuth != "ca" && hasPEM:
		return e.p.errf(e.field("client_ca"), "is only allowed with client_auth = \"ca\"")
	case hasPEM:
		if err := checkPEMCerts(pemStr); err != nil {
			return e.p.errf(e.field("client_ca"), "%v", err)
		}
		t.ClientCA = pemStr
	}
	return nil
}

// connectTLS reads ca and server_name.
func (e *entry) connectTLS(t *TLSOptions) error {
	if pemStr, ok, err := e.str("ca"); err != nil {
		return err
	} else if ok {
		if err := checkPEMCerts(pemStr); err != nil {
			return e.p.errf(e.field("ca"), "%v", err)
		}
		t.CA = pemStr
	}
	if sn, ok, err := e.str("server_name"); err != nil {
		return err
	} else if ok {
		if err := checkHost(sn); err != nil {
			return e.p.errf(e.field("server_name"), "%q: %v", sn, err)
		}
		t.ServerName = sn
	}
	return nil
}

// checkHost accepts host names and IP literals; it rejects what could never
// name a host (empty, whitespace, control characters, URL syntax).
func checkHost(h string) error {
	if h == "" {
		return errors.New("must not be empty")
	}
	if len(h) > 253 {
		return errors.New("is longer than 253 characters")
	}
	for _, r := range h {
		if unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune("/?#@[]", r) {
			return fmt.Errorf("contains %q, which is not allowed in a host name or IP address", r)
		}
	}
	return nil
}

// checkPEMCerts requires s to be one or more PEM CERTIFICATE blocks, each a
// parseable X.509 certificate, and nothing else but whitespace.
func checkPEMCerts(s string) error {
	rest := []byte(s)
	n := 0
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return fmt.Errorf("PEM block %d is %q; only CERTIFICATE blocks are allowed", n+1, b.Type)
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return fmt.Errorf("PEM certificate %d does not parse: %v", n+1, err)
		}
		n++
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return errors.New("contains text that is not a PEM certificate")
	}
	if n == 0 {
		return errors.New("contains no PEM certificate (-----BEGIN CERTIFICATE-----)")
	}
	return nil
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	default:
		return "a date/time"
	}
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func quoteList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// FDNames returns the name of every fd in order (FD_NAMES is their
// ':'-joined list; FD_COUNT is len).
func (c *Config) FDNames() []string {
	names := make([]string, len(c.Files))
	for i, f := range c.Files {
		names[i] = f.Name
	}
	return names
}
