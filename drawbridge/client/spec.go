package client

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/enarx-go/enarx/drawbridge/types"
)

// MaxSpecLen bounds a spec string.
const MaxSpecLen = 2048

// UserSpec names a user on a registry: "host/user". Upstream makes the host
// optional and defaults to its hosted registry, which no longer runs; here
// a spec without a host is an error that says how to write one.
type UserSpec struct {
	Host string
	User types.UserName
}

// RepoSpec names a repository: "host/user/repo".
type RepoSpec struct {
	UserSpec
	Repo types.RepoName
}

// PackageSpec names a tagged package: "host/user/repo:tag", optionally
// pinned to the root digest its tag entry must name: "…:tag@sha-256:<hex>"
// (hex, or standard/URL-safe base64 with or without padding).
type PackageSpec struct {
	RepoSpec
	Tag types.TagName
	// Pin is nil or holds exactly one algorithm.
	Pin types.Digests
}

func (s UserSpec) String() string { return s.Host + "/" + string(s.User) }
func (s RepoSpec) String() string { return s.UserSpec.String() + "/" + string(s.Repo) }
func (s PackageSpec) String() string {
	return s.RepoSpec.String() + ":" + string(s.Tag) + s.PinString()
}

// PinString returns "@alg:<hex>" or "" if the spec is not pinned.
func (s PackageSpec) PinString() string {
	for a, v := range s.Pin {
		return "@" + string(a) + ":" + hex.EncodeToString(v)
	}
	return ""
}

// noHost is the error for a spec that names no registry host.
func noHost(s string) error {
	return fmt.Errorf("invalid spec %q: it names no registry host; write HOST[:PORT]/%s "+
		"(for a local `drawbridge --dev` registry: localhost:8443/%s)", s, s, s)
}

// ParseUserSpec parses "host/user".
func ParseUserSpec(s string) (UserSpec, error) {
	if len(s) > MaxSpecLen {
		return UserSpec{}, fmt.Errorf("invalid user spec: longer than %d bytes", MaxSpecLen)
	}
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		return UserSpec{}, noHost(s)
	}
	host, user := s[:i], s[i+1:]
	if err := validateHost(host); err != nil {
		return UserSpec{}, fmt.Errorf("invalid spec %q: %w", s, err)
	}
	u, err := types.ParseUserName(user)
	if err != nil {
		return UserSpec{}, fmt.Errorf("invalid spec %q: %w", s, err)
	}
	return UserSpec{Host: host, User: u}, nil
}

// ParseRepoSpec parses "host/user/repo".
func ParseRepoSpec(s string) (RepoSpec, error) {
	if len(s) > MaxSpecLen {
		return RepoSpec{}, fmt.Errorf("invalid repository spec: longer than %d bytes", MaxSpecLen)
	}
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		return RepoSpec{}, fmt.Errorf("invalid repository spec %q: want host/user/repo", s)
	}
	if !strings.Contains(s[:i], "/") {
		return RepoSpec{}, noHost(s)
	}
	us, err := ParseUserSpec(s[:i])
	if err != nil {
		return RepoSpec{}, err
	}
	r, err := types.ParseRepoName(s[i+1:])
	if err != nil {
		return RepoSpec{}, fmt.Errorf("invalid spec %q: %w", s, err)
	}
	return RepoSpec{UserSpec: us, Repo: r}, nil
}

// ParsePackageSpec parses "host/user/repo:tag[@alg:digest]".
func ParsePackageSpec(s string) (PackageSpec, error) {
	if len(s) > MaxSpecLen {
		return PackageSpec{}, fmt.Errorf("invalid package spec: longer than %d bytes", MaxSpecLen)
	}
	head, pin, pinned := strings.Cut(s, "@")
	i := strings.LastIndexByte(head, ':')
	if i < 0 || strings.IndexByte(head[i:], '/') >= 0 {
		return PackageSpec{}, fmt.Errorf("invalid package spec %q: want host/user/repo:tag", s)
	}
	if strings.Count(head[:i], "/") == 1 {
		return PackageSpec{}, noHost(s)
	}
	rs, err := ParseRepoSpec(head[:i])
	if err != nil {
		return PackageSpec{}, err
	}
	tag, err := types.ParseTagName(head[i+1:])
	if err != nil {
		return PackageSpec{}, fmt.Errorf("invalid spec %q: %w", s, err)
	}
	ps := PackageSpec{RepoSpec: rs, Tag: tag}
	if pinned {
		d, err := ParsePin(pin)
		if err != nil {
			return PackageSpec{}, fmt.Errorf("invalid spec %q: %w", s, err)
		}
		ps.Pin = d
	}
	return ps, nil
}

// ParsePin parses "alg:value" where value is hex or base64 (standard or
// URL-safe, padded or not) of the right length for alg.
func ParsePin(s string) (types.Digests, error) {
	name, val, ok := strings.Cut(s, ":")
	if !ok {
		return nil, fmt.Errorf("invalid digest pin %q: want sha-256:<hex or base64>", s)
	}
	a, err := types.ParseAlgorithm(name)
	if err != nil {
		return nil, fmt.Errorf("invalid digest pin: %w", err)
	}
	if len(val) == 2*a.Size() {
		if b, err := hex.DecodeString(val); err == nil {
			return types.Digests{a: b}, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.Strict().DecodeString(val); err == nil && len(b) == a.Size() {
			return types.Digests{a: b}, nil
		}
	}
	return nil, fmt.Errorf("invalid digest pin %q: want %d bytes as hex or base64", s, a.Size())
}

// validateHost accepts "name", "name:port", "[v6]:port"; nothing with a
// path, user info, query or fragment.
func validateHost(h string) error {
	if h == "" {
		return errors.New("empty host")
	}
	u, err := url.Parse("https://" + h)
	if err != nil || u.Host != h || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Hostname() == "" {
		return fmt.Errorf("invalid host %q", h)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 || p[0] == '0' {
			return fmt.Errorf("invalid port in host %q", h)
		}
	} else if strings.HasSuffix(h, ":") {
		return fmt.Errorf("invalid host %q: empty port", h)
	}
	for i := 0; i < len(h); i++ {
		if h[i] <= ' ' || h[i] >= 0x7f || h[i] == '%' {
			return fmt.Errorf("invalid host %q", h)
		}
	}
	return nil
}

// ParsePackageURL turns "https://host[:port]/api/v0.1.0/user/repo/_tag/tag"
// (optionally followed by "@alg:digest") into a PackageSpec.
func ParsePackageURL(raw string) (PackageSpec, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the URL, password and all.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return PackageSpec{}, fmt.Errorf("invalid package URL: %w", err)
	}
	// Errors show the URL without a password it may hold.
	shown := u.Redacted()
	if u.Scheme != "https" {
		return PackageSpec{}, fmt.Errorf("invalid package URL %q: only https is supported", shown)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return PackageSpec{}, fmt.Errorf("invalid package URL %q: user info, query and fragment are not allowed", shown)
	}
	rest, ok := strings.CutPrefix(u.EscapedPath(), "/"+APIPrefix+"/")
	if !ok {
		return PackageSpec{}, fmt.Errorf("invalid package URL %q: want https://host/%s/user/repo/_tag/tag", shown, APIPrefix)
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 || parts[2] != "_tag" {
		return PackageSpec{}, fmt.Errorf("invalid package URL %q: want https://host/%s/user/repo/_tag/tag", shown, APIPrefix)
	}
	return ParsePackageSpec(u.Host + "/" + parts[0] + "/" + parts[1] + ":" + parts[3])
}
