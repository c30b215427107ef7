package httpapi

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/enarx-go/enarx/drawbridge/types"
	"github.com/enarx-go/enarx/internal/oidctest"
)

// TestPrivateLooksMissing: a caller who may not read a private repository
// (anonymous, a client certificate where certificates do not read, an
// invalid or malformed token, another user's token, the owner's token
// without the scope) gets exactly the response a missing repository gets,
// status, headers (but Date) and body, on every route: the repository, its
// tag list, a tag, the tree root, files and directories, paths and tags
// that do not exist in it, and PUTs of a repository, tag or node. So
// private repository, tag and path names cannot be probed. The owner still
// gets the real answers.
func TestPrivateLooksMissing(t *testing.T) {
	e := newEnv(t)
	e.setup("alice", testSubject, e.token, map[string]bool{"secret": false})
	mallory := e.mint(oidctest.Claims{Subject: "mallory", Scope: oidctest.AllScopes})
	e.setup("mallory", "mallory", mallory, nil)
	nodes := testPackage(t, "")
	e.publish(e.anon, "/alice/secret", "1.0.0", e.token, nodes)

	type caller struct {
		name string
		c    *http.Client
		auth string // the Authorization header, "" for none
	}
	expired := e.mint(oidctest.Claims{Subject: testSubject, Scope: oidctest.AllScopes,
		Expiry: time.Now().Add(-2 * time.Hour), IssuedAt: time.Now().Add(-3 * time.Hour)})
	denied := []caller{
		{"anonymous", e.anon, ""},
		{"another user's token", e.anon, "Bearer " + mallory},
		{"the owner's expired token", e.anon, "Bearer " + expired},
		{"a garbage token", e.anon, "Bearer not.a.jwt"},
		{"a Basic header", e.anon, "Basic YWxhZGRpbjpvcGVuc2VzYW1l"},
	}
	// The owner's token without the scope the operation needs.
	readDenied := append(slices.Clone(denied), caller{"the owner's token without repositories:read", e.anon,
		"Bearer " + e.mint(oidctest.Claims{Subject: testSubject, Scope: "write:drawbridge_tags write:drawbridge_repositories"})})
	writeDenied := append(slices.Clone(denied), caller{"the owner's read-only token", e.anon,
		"Bearer " + e.mint(oidctest.Claims{Subject: testSubject, Scope: "read:drawbridge_repositories read:drawbridge_users"})})
	// A client certificate reads trees (of any repository), nothing else.
	cert := caller{"a client certificate", e.cert, ""}

	var file types.Node // main.wasm
	for _, n := range nodes {
		if n.Path.String() == "main.wasm" {
			file = n
		}
	}
	entry, _ := nodes[0].Entry.MarshalJSON()
	treePaths := []string{"/alice/secret/_tag/1.0.0/tree", "/alice/secret/_tag/1.0.0/tree/"}
	for _, n := range nodes {
		treePaths = append(treePaths, "/alice/secret/_tag/1.0.0/tree/"+n.Path.String())
	}
	treePaths = append(treePaths, "/alice/secret/_tag/1.0.0/tree/nope", "/alice/secret/_tag/1.0.0/tree/test-dir-1/nope",
		"/alice/secret/_tag/9.9.9/tree", "/alice/secret/_tag/9.9.9/tree/main.wasm")

	type body struct {
		b   []byte
		hdr map[string]string
	}
	for _, g := range []struct {
		name    string
		methods []string
		private []string // paths in the private repository
		missing []string // the same routes where nothing exists
		callers []caller
		body    *body
	}{
		{"repository", []string{"GET", "HEAD"}, []string{"/alice/secret"}, []string{"/alice/nope"},
			append(slices.Clone(readDenied), cert), nil},
		{"tag list", []string{"GET", "HEAD", "PUT"}, []string{"/alice/secret/_tag"},
			[]string{"/alice/nope/_tag", "/nobody/nope/_tag"}, append(slices.Clone(readDenied), cert), nil},
		{"tag", []string{"GET", "HEAD"}, []string{"/alice/secret/_tag/1.0.0", "/alice/secret/_tag/9.9.9"},
			[]string{"/alice/nope/_tag/1.0.0", "/nobody/nope/_tag/1.0.0"}, append(slices.Clone(readDenied), cert), nil},
		{"tree", []string{"GET", "HEAD"}, treePaths,
			[]string{"/alice/nope/_tag/1.0.0/tree", "/alice/nope/_tag/1.0.0/tree/main.wasm", "/alice/nope/_tag/1.0.0/tree/test-dir-1", "/nobody/nope/_tag/1.0.0/tree/main.wasm"},
			readDenied, nil},
		{"repository PUT", []string{"PUT"}, []string{"/alice/secret"}, []string{"/alice/nope"},
			append(slices.Clone(writeDenied), cert), &body{[]byte(`{"public":true}`), nil}},
		{"tag PUT", []string{"PUT"}, []string{"/alice/secret/_tag/1.0.0", "/alice/secret/_tag/2.0.0"}, []string{"/alice/nope/_tag/1.0.0"},
			append(slices.Clone(writeDenied), cert), &body{entry, map[string]string{"Content-Type": types.EntryType, "Content-Digest": nodes[0].Entry.Digest.String()}}},
		{"tree PUT", []string{"PUT"}, []string{"/alice/secret/_tag/1.0.0/tree/main.wasm", "/alice/secret/_tag/2.0.0/tree/main.wasm"},
			[]string{"/alice/nope/_tag/1.0.0/tree/main.wasm"}, append(slices.Clone(writeDenied), cert),
			&body{file.Content, map[string]string{"Content-Type": file.Entry.Type, "Content-Digest": file.Entry.Digest.String()}}},
	} {
		for _, c := range g.callers {
			for _, m := range g.methods {
				var want string
				for i, p := range append(slices.Clone(g.missing), g.private...) {
					hdr := map[string]string{}
					var b []byte
					if g.body != nil && m == "PUT" {
						b = g.body.b
						for k, v := range g.body.hdr {
							hdr[k] = v
						}
					}
					if c.auth != "" {
						hdr["Authorization"] = c.auth
					}
					got := fullResponse(e.req(c.c, m, p, "", b, hdr))
					if i == 0 {
						want = got
						continue
					}
					if got != want {
						t.Errorf("%s, %s %s %s:\n%s\nwant (as for missing %s):\n%s", g.name, c.name, m, p, got, g.missing[0], want)
					}
				}
			}
		}
	}
	// The answer chosen: upstream's for a missing repository.
	if r := e.req(e.anon, "GET", "/alice/secret/_tag/1.0.0/tree/main.wasm", "", nil, nil); r.code != 404 || string(r.body) != "Not found" {
		t.Errorf("anonymous read of a private node: %d %q, want 404 %q", r.code, r.body, "Not found")
	}
	// Nothing was created by the refused PUTs.
	e.expect(e.req(e.anon, "GET", "/alice/nope", e.token, nil, nil), 404, "owner GET /alice/nope after refused PUTs")
	e.expect(e.req(e.anon, "GET", "/alice/secret/_tag/2.0.0", e.token, nil, nil), 404, "owner GET tag 2.0.0 after refused PUTs")

	// The owner gets the real answers.
	r := e.req(e.anon, "GET", "/alice/secret", e.token, nil, nil)
	if r.code != 200 || string(r.body) != `{"public":false}` {
		t.Errorf("owner GET repository: %d %q", r.code, r.body)
	}
	if r := e.req(e.anon, "GET", "/alice/secret/_tag", e.token, nil, nil); r.code != 200 || string(r.body) != `["1.0.0"]` {
		t.Errorf("owner GET tag list: %d %q", r.code, r.body)
	}
	for _, m := range []string{"GET", "HEAD"} {
		r := e.req(e.anon, m, "/alice/secret/_tag/1.0.0", e.token, nil, nil)
		e.expect(r, 200, "owner "+m+" tag")
		for _, n := range nodes {
			r := e.req(e.anon, m, "/alice/secret/_tag/1.0.0/tree/"+n.Path.String(), e.token, nil, nil)
			what := fmt.Sprintf("owner %s /%s", m, n.Path)
			e.expect(r, 200, what)
			checkEntityHeaders(t, what, r, n.Entry.Meta)
			if m == "GET" && string(r.body) != string(n.Content) {
				t.Errorf("%s: body differs", what)
			}
		}
	}
	for p, want := range map[string]string{
		"/alice/secret/_tag/9.9.9":              "Repository does not exist",
		"/alice/secret/_tag/1.0.0/tree/nope":    "Repository does not exist",
		"/alice/nope/_tag":                      "Not found",
		"/alice/nope/_tag/1.0.0/tree/main.wasm": "Not found",
	} {
		if r := e.req(e.anon, "GET", p, e.token, nil, nil); r.code != 404 || string(r.body) != want {
			t.Errorf("owner GET %s: %d %q, want 404 %q", p, r.code, r.body, want)
		}
	}
	e.expect(e.putEntity(e.anon, "/alice/secret/_tag/1.0.0", e.token, types.EntryType, entry), 409, "owner re-publishes")
	// A client certificate still reads private trees.
	e.expect(e.req(e.cert, "GET", "/alice/secret/_tag/1.0.0/tree/main.wasm", "", nil, nil), 200, "certificate reads a private node")
}

// fullResponse is a response's status, headers but Date, and body.
func fullResponse(r resp) string {
	h := r.h.Clone()
	h.Del("Date")
	var b strings.Builder
	fmt.Fprintf(&b, "%d\n", r.code)
	h.Write(&b)
	fmt.Fprintf(&b, "%q", r.body)
	return b.String()
}
