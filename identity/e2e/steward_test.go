package e2e

import (
	"bytes"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attest/certext"
	"github.com/enarx-go/enarx/attestation/kvm"
	"github.com/enarx-go/enarx/config"
	"github.com/enarx-go/enarx/identity"
	"github.com/enarx-go/enarx/steward"
	"github.com/enarx-go/enarx/steward/stewardtest"
)

// testWorkload is the identity of a workload that is not run.
func testWorkload() certext.Workload {
	w := sha256.Sum256([]byte("e2e wasm"))
	c := sha256.Sum256([]byte("e2e toml"))
	return certext.Workload{WasmSHA256: w[:], ConfigSHA256: c[:], Package: "sha-256=:abc=:"}
}

func TestIdentityFromStewardDebugMode(t *testing.T) {
	ca, err := steward.GenerateCA("steward.test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ts := startStewardWith(t, ca, kvm.Options{}).srv
	w := testWorkload()
	id, err := identity.Establish(t.Context(), identity.Request{Steward: ts.URL, Workload: w, HTTPClient: ts.Client()})
	if err != nil {
		t.Fatal(err)
	}
	chain := id.Chain()
	if len(chain) != 2 || !id.StewardCA().Equal(ca.Chain[0]) {
		t.Fatalf("chain of %d, steward CA %v", len(chain), id.StewardCA().Subject)
	}
	gotW, att, err := certext.FromCertificate(chain[0])
	if err != nil || gotW == nil || att == nil {
		t.Fatalf("extensions: %v %v %v", gotW, att, err)
	}
	if !bytes.Equal(gotW.WasmSHA256, w.WasmSHA256) || gotW.Package != w.Package {
		t.Errorf("workload %+v", gotW)
	}
	if att.Claims.Kind != attest.KindNone || att.Claims.HardwareBacked || !att.StewardDebug {
		t.Errorf("attested-as %+v", att)
	}

	// The Keep serves TLS; a client trusting only the Steward CA checks the
	// workload it talks to.
	cfg, err := id.ServerTLS(config.File{Kind: config.KindListen, Name: "l", Prot: config.ProtTLS})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.Copy(c, c)
			c.Close()
		}
	}()
	pool := x509.NewCertPool()
	pool.AddCert(ca.Chain[0])
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: keepSAN})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	peer, _, err := certext.FromCertificate(conn.ConnectionState().PeerCertificates[0])
	if err != nil || peer == nil || !bytes.Equal(peer.ConfigSHA256, w.ConfigSHA256) {
		t.Fatalf("peer workload %+v %v", peer, err)
	}
}

func TestIdentityFromStewardProductionMode(t *testing.T) {
	ca, root := stewardtest.ProductionCA(t, elliptic.P384())

	// Upstream behaviour: no-hardware evidence is refused outside debug
	// mode, and the Keep's error quotes the Steward's reason.
	ts := startStewardWith(t, ca, kvm.Options{}).srv
	_, err := identity.Establish(t.Context(), identity.Request{Steward: ts.URL, Workload: testWorkload(), HTTPClient: ts.Client()})
	if err == nil || !strings.Contains(err.Error(), kvm.CodeNotAllowed) {
		t.Fatalf("error %v, want the steward's %q reason", err, kvm.CodeNotAllowed)
	}

	// Explicitly allowed: the chain runs through the intermediate to the root.
	ts = startStewardWith(t, ca, kvm.Options{AllowWithoutDebug: true}).srv
	id, err := identity.Establish(t.Context(), identity.Request{Steward: ts.URL, Workload: testWorkload(), HTTPClient: ts.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if len(id.Chain()) != 3 || !id.StewardCA().Equal(root) {
		t.Fatalf("chain of %d", len(id.Chain()))
	}
	_, att, _ := certext.FromCertificate(id.Chain()[0])
	if att == nil || att.StewardDebug {
		t.Fatalf("attested-as %+v", att)
	}
}
