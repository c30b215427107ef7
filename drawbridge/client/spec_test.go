package client

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/drawbridge/types"
)

func TestParsePackageSpec(t *testing.T) {
	sum := make([]byte, 32)
	for i := range sum {
		sum[i] = byte(i)
	}
	hx := hex.EncodeToString(sum)
	cases := []struct {
		in                    string
		host, user, repo, tag string
		pinned                bool
	}{
		{"localhost:8443/user/repo:1.0.0", "localhost:8443", "user", "repo", "1.0.0", false},
		{"[::1]:8443/u/r-x:1.2.3-rc.1+b5", "[::1]:8443", "u", "r-x", "1.2.3-rc.1+b5", false},
		{"store.example.com/u/r:0.1.0@sha-256:" + hx, "store.example.com", "u", "r", "0.1.0", true},
		{"h/u/r:0.1.0@SHA-256:" + base64.StdEncoding.EncodeToString(sum), "h", "u", "r", "0.1.0", true},
		{"h/u/r:0.1.0@sha-256:" + base64.RawURLEncoding.EncodeToString(sum), "h", "u", "r", "0.1.0", true},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			s, err := ParsePackageSpec(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if s.Host != c.host || string(s.User) != c.user || string(s.Repo) != c.repo || string(s.Tag) != c.tag {
				t.Fatalf("got %+v", s)
			}
			if c.pinned != (s.Pin != nil) {
				t.Fatalf("pin = %v", s.Pin)
			}
			if c.pinned && hex.EncodeToString(s.Pin[types.SHA256]) != hx {
				t.Fatalf("pin value %x", s.Pin[types.SHA256])
			}
			// String is parseable and stable.
			again, err := ParsePackageSpec(s.String())
			if err != nil || again.String() != s.String() {
				t.Fatalf("round trip %q: %v", s.String(), err)
			}
		})
	}
}

func TestParsePackageSpecRejects(t *testing.T) {
	for _, in := range []string{
		"", "repo:1.0.0", "user/repo", "user/repo:", "user/repo:v1.0.0", "user/repo:1.0",
		"u.x/repo:1.0.0", "user/re_po:1.0.0", "/user/repo:1.0.0", "host/path/user/repo:1.0.0",
		"us@er/repo:1.0.0", "user/repo:1.0.0@", "user/repo:1.0.0@sha-256:abcd", "user/repo:1.0.0@md5:" + strings.Repeat("00", 16),
		"user/repo:1.0.0@sha-256:" + strings.Repeat("00", 32) + "@x", "localhost:8443/user/repo", "h:/u/r:1.0.0",
		"h:x/u/r:1.0.0", "h:99999999999999999999/u/r:1.0.0", "h:0/u/r:1.0.0", "h:080/u/r:1.0.0", "a b/u/r:1.0.0", "h%41/u/r:1.0.0", strings.Repeat("a", MaxSpecLen+1),
	} {
		if s, err := ParsePackageSpec(in); err == nil {
			t.Errorf("%q accepted as %+v", in, s)
		}
	}
}

func TestParseRepoAndUserSpec(t *testing.T) {
	r, err := ParseRepoSpec("localhost:1234/u/r")
	if err != nil || r.Host != "localhost:1234" || r.User != "u" || r.Repo != "r" {
		t.Fatalf("%+v %v", r, err)
	}
	u, err := ParseUserSpec("h/u")
	if err != nil || u.Host != "h" || u.User != "u" {
		t.Fatalf("%+v %v", u, err)
	}
	// Upstream's default host (its hosted registry) is gone: a spec
	// without a host says how to write one.
	for in, parse := range map[string]func(string) error{
		"u":             func(s string) error { _, err := ParseUserSpec(s); return err },
		"u/r":           func(s string) error { _, err := ParseRepoSpec(s); return err },
		"u/r:1.0.0":     func(s string) error { _, err := ParsePackageSpec(s); return err },
		"dev/hello:0.1": func(s string) error { _, err := ParsePackageSpec(s); return err },
	} {
		err := parse(in)
		want := fmt.Sprintf("invalid spec %q: it names no registry host; write HOST[:PORT]/%s", in, in)
		if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "profian") {
			t.Errorf("%q: %v, want %q…", in, err, want)
		}
	}
	for _, in := range []string{"", "u/", "h/u/", "h//u", "u-x"} {
		if _, err := ParseUserSpec(in); err == nil {
			t.Errorf("user spec %q accepted", in)
		}
	}
}

func TestParsePackageURL(t *testing.T) {
	s, err := ParsePackageURL("https://localhost:8443/api/v0.1.0/u/r/_tag/1.0.0")
	if err != nil || s.String() != "localhost:8443/u/r:1.0.0" {
		t.Fatalf("%v %v", s, err)
	}
	for _, in := range []string{
		"http://h/api/v0.1.0/u/r/_tag/1.0.0", "https://h/api/v0.2.0/u/r/_tag/1.0.0",
		"https://h/api/v0.1.0/u/r/_tag/1.0.0/tree", "https://x@h/api/v0.1.0/u/r/_tag/1.0.0",
		"https://h/api/v0.1.0/u/r/_tag/1.0.0?x", "https://h/api/v0.1.0/u/r/tags/1.0.0",
	} {
		if _, err := ParsePackageURL(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func FuzzParsePackageSpec(f *testing.F) {
	for _, s := range []string{"u/r:1.0.0", "localhost:8443/u/r:1.0.0@sha-256:" + strings.Repeat("ab", 32), "[::1]:1/u/r:1.2.3-a+b", "h/u/r:1.0.0@sha-512:AAAA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParsePackageSpec(in)
		if err != nil {
			return
		}
		// Everything accepted prints to a spec that parses to the same thing.
		again, err := ParsePackageSpec(s.String())
		if err != nil {
			t.Fatalf("%q → %q does not parse: %v", in, s.String(), err)
		}
		if again.String() != s.String() {
			t.Fatalf("%q → %q → %q", in, s.String(), again.String())
		}
		if _, err := New(s.Host, Options{}); err != nil {
			t.Fatalf("accepted host %q rejected by New: %v", s.Host, err)
		}
	})
}
