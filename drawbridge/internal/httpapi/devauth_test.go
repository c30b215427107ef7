package httpapi

import (
	"context"
	"errors"
	"testing"

	"github.com/enarx-go/enarx/drawbridge/internal/store"
	"github.com/enarx-go/enarx/drawbridge/types"
	"github.com/enarx-go/enarx/internal/oidctest"
)

// TestDevCreateOnlyForOwner: in dev mode, a tag PUT with the dev token in
// another user's namespace is refused (401) and creates nothing there; it
// used to create a public repository first and refuse afterwards.
func TestDevCreateOnlyForOwner(t *testing.T) {
	e := newEnv(t)
	e.srv.Config.Handler.(*Handler).cfg.DevSubject = testSubject
	alice := e.mint(oidctest.Claims{Subject: "alice|subject", Scope: oidctest.AllScopes})
	e.setup("alice", "alice|subject", alice, nil)
	entry, _ := testPackage(t, "")[0].Entry.MarshalJSON()
	e.expect(e.putEntity(e.anon, "/alice/planted/_tag/0.1.0", e.token, types.EntryType, entry), 401, "dev token in alice's namespace")
	if _, _, err := e.reg.Repo(context.Background(), "alice", "planted"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a repository was planted in alice's namespace: %v", err)
	}
	// A missing scope refuses before anything is created too.
	readOnly := e.mint(oidctest.Claims{Subject: testSubject, Scope: "openid read:drawbridge_users read:drawbridge_repositories read:drawbridge_tags"})
	e.expect(e.putEntity(e.anon, "/newbie/hello/_tag/0.1.0", readOnly, types.EntryType, entry), 401, "dev subject without write scopes")
	if _, _, err := e.reg.User(context.Background(), "newbie"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a user was created for a token without write scopes: %v", err)
	}
}
