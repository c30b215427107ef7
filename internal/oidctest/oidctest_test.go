package oidctest

import (
	"context"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

func TestTokensVerifyWithGoOIDC(t *testing.T) {
	p := New(t)
	ctx := context.Background()
	prov, err := oidc.NewProvider(ctx, p.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	v := prov.Verifier(&oidc.Config{ClientID: "aud"})
	tok := p.Token(t, Claims{Subject: "s", Audience: []string{"aud"}, Scope: AllScopes})
	idt, err := v.Verify(ctx, tok)
	if err != nil || idt.Subject != "s" {
		t.Fatalf("verify: %v", err)
	}
	for name, bad := range map[string]string{
		"expired":  p.Token(t, Claims{Subject: "s", Audience: []string{"aud"}, Expiry: time.Now().Add(-time.Hour)}),
		"audience": p.Token(t, Claims{Subject: "s", Audience: []string{"other"}}),
		"foreign":  p.ForeignToken(t, Claims{Subject: "s", Audience: []string{"aud"}}),
	} {
		if _, err := v.Verify(ctx, bad); err == nil {
			t.Errorf("%s token verified", name)
		}
	}
	old := tok
	p.Rotate(t)
	if _, err := v.Verify(ctx, p.Token(t, Claims{Subject: "s", Audience: []string{"aud"}})); err != nil {
		t.Fatalf("token after rotation: %v", err)
	}
	// A fresh verifier (go-oidc's RemoteKeySet updates its cache just
	// after waking waiters, so the first one may briefly see the old set).
	prov2, err := oidc.NewProvider(ctx, p.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prov2.Verifier(&oidc.Config{ClientID: "aud"}).Verify(ctx, old); err == nil {
		t.Fatal("token of a retired key still verifies")
	}
}
