package client

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/drawbridge/drawbridgetest"
)

// TestPrivateOrMissing: the registry answers a read of a private package
// by someone who may not read it as it answers for a missing repository;
// the client says it is missing or private, and, when it sent no token,
// that logging in may show it. A missing tag in a readable repository is
// still told apart, and the owner reads the package.
func TestPrivateOrMissing(t *testing.T) {
	reg := drawbridgetest.Start(t)
	ctx := context.Background()
	newClient := func(token string) *Client {
		c, err := New(reg.Host, Options{CABundle: reg.CA, Token: token})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	owner := newClient(reg.Token(t, "alice|subject"))
	if err := owner.PutUser(ctx, "alice", UserRecord{Subject: "alice|subject"}); err != nil {
		t.Fatal(err)
	}
	secret := RepoSpec{UserSpec: UserSpec{Host: reg.Host, User: "alice"}, Repo: "secret"}
	pub := RepoSpec{UserSpec: UserSpec{Host: reg.Host, User: "alice"}, Repo: "pub"}
	for r, public := range map[RepoSpec]bool{secret: false, pub: true} {
		if err := owner.PutRepo(ctx, r, RepoConfig{Public: public}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.wasm"), []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	tree, err := BuildTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []RepoSpec{secret, pub} {
		if err := owner.Publish(ctx, PackageSpec{RepoSpec: r, Tag: "1.0.0"}, tree); err != nil {
			t.Fatal(err)
		}
	}

	anon := newClient("")
	other := newClient(reg.Token(t, "mallory|subject"))
	missing := RepoSpec{UserSpec: UserSpec{Host: reg.Host, User: "alice"}, Repo: "nope"}
	for _, tc := range []struct {
		name string
		c    *Client
		want string
	}{
		{"anonymous", anon, "no token was sent (a private package is visible only to its owner: log in to see it)"},
		{"another user", other, "the token sent may not read it"},
	} {
		for _, r := range []RepoSpec{secret, missing} {
			p := PackageSpec{RepoSpec: r, Tag: "1.0.0"}
			_, err := tc.c.GetTag(ctx, p)
			if !errors.Is(err, ErrNoRepository) || !IsStatus(err, http.StatusNotFound) ||
				!strings.Contains(err.Error(), "no repository "+r.String()+" on the registry, or it is private") ||
				!strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s, GetTag %s: %v, want ErrNoRepository saying %q", tc.name, p, err, tc.want)
			}
			if _, err := tc.c.FetchBundle(ctx, p, nil); !errors.Is(err, ErrNoRepository) {
				t.Errorf("%s, FetchBundle %s: %v, want ErrNoRepository", tc.name, p, err)
			}
		}
	}
	// A missing tag of a repository one may read is not "missing or private".
	for _, p := range []PackageSpec{{RepoSpec: pub, Tag: "9.9.9"}, {RepoSpec: secret, Tag: "9.9.9"}} {
		c := anon
		if p.RepoSpec == secret {
			c = owner
		}
		if _, err := c.GetTag(ctx, p); errors.Is(err, ErrNoRepository) || !strings.Contains(err.Error(), "no tag 9.9.9 in repository") {
			t.Errorf("GetTag %s: %v, want a missing tag", p, err)
		}
	}
	if _, err := owner.FetchBundle(ctx, PackageSpec{RepoSpec: secret, Tag: "1.0.0"}, nil); err != nil {
		t.Errorf("the owner fetches the private package: %v", err)
	}
}
