package e2e

import (
	"bytes"
	"context"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attest/certext"
	"github.com/enarx-go/enarx/attestation/policy"
	snpbackend "github.com/enarx-go/enarx/backend/snp"
	tdxbackend "github.com/enarx-go/enarx/backend/tdx"
	"github.com/enarx-go/enarx/evidence/emulated"
	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/keep"
	"github.com/enarx-go/enarx/steward"
	"github.com/enarx-go/enarx/steward/stewardtest"
)

const keepSAN = "keep.test"

var (
	confOnce sync.Once
	confDir  string
)

// useEmulationDir points the emulated roots at one directory for the whole
// test binary (generating the SNP root's RSA-4096 keys once).
func useEmulationDir(t *testing.T) {
	t.Helper()
	confOnce.Do(func() {
		d, err := os.MkdirTemp("", "enarx-e2e-config")
		if err != nil {
			t.Fatal(err)
		}
		confDir = d
	})
	t.Setenv("XDG_CONFIG_HOME", confDir)
}

// startSteward runs the real Steward over HTTPS with the verifiers of
// policyTOML and returns its URL, its HTTPS certificate (PEM, for the
// Enarx.toml steward_ca) and the root relying parties trust.
func startSteward(t *testing.T, policyTOML string) (url, httpsPEM string, root *x509.Certificate) {
	t.Helper()
	p, err := policy.Parse([]byte(policyTOML))
	if err != nil {
		t.Fatalf("policy:\n%s\n%v", policyTOML, err)
	}
	vs, err := p.Verifiers(policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ca, root := stewardtest.ProductionCA(t, elliptic.P256())
	s, err := steward.New(steward.Config{CA: ca, Verifiers: vs, SANs: []string{keepSAN}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(s)
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	return ts.URL, string(cert), root
}

func wasm(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(testutil.BuildWasm(t, filepath.Join("..", "..", "examples", "tls-echo")))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// runKeep runs examples/tls-echo in a Keep with evidence ev, behind a
// Steward at url; it returns the address it serves, or the error keep.Run
// returned when the Keep could not start.
func runKeep(t *testing.T, ev attest.EvidenceProvider, url, httpsPEM string) (string, error) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	lf, err := ln.File()
	ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lf.Close() })
	cfg := fmt.Sprintf("steward = %q\nsteward_ca = '''\n%s'''\n\n[[files]]\nkind = \"stdin\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \"stderr\"\n[[files]]\nname = \"ingest\"\nkind = \"listen\"\nprot = \"tls\"\naddr = \"127.0.0.1\"\nport = %d\n",
		url, httpsPEM, port)
	dir := t.TempDir()
	in, _ := os.Open(os.DevNull)
	out, _ := os.Create(filepath.Join(dir, "stdout"))
	errf, _ := os.Create(filepath.Join(dir, "stderr"))
	t.Cleanup(func() { in.Close(); out.Close(); errf.Close() })
	cache := filepath.Join(os.TempDir(), "enarx-evidence-e2e-cache")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := keep.Run(ctx, keep.Workload{Wasm: wasm(t), Config: []byte(cfg)},
			keep.Options{Files: []*os.File{in, out, errf, lf}, Evidence: ev, CacheDir: cache})
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(time.Minute): // a hang, not a timing assertion
			t.Error("keep.Run did not return after cancellation")
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// The Keep is up once it accepts a TLS handshake; a Keep that fails to
	// attest returns an error instead.
	for {
		select {
		case err := <-done:
			done <- err
			return "", err
		default:
		}
		// A bounded handshake: if the Keep died after the check above, the
		// host's listening socket still completes TCP connects.
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second, Deadline: time.Now().Add(2 * time.Second)},
			"tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			c.Close()
			return addr, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// relyingParty connects to the Keep trusting only root, echoes a message,
// and returns what the Steward attested.
func relyingParty(t *testing.T, addr string, root *x509.Certificate) *certext.AttestedAs {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(root)
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: keepSAN, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatalf("relying party: %v", err)
	}
	defer c.Close()
	msg := []byte("attested hello")
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo: %q, %v", got, err)
	}
	_, att, err := certext.FromCertificate(c.ConnectionState().PeerCertificates[0])
	if err != nil || att == nil {
		t.Fatalf("attested-as extension: %v, %v", att, err)
	}
	return att
}

func snpPolicy(measurement []byte, root *emulated.SNPRoot) string {
	p := fmt.Sprintf("[snp]\nhash = [%q]\nabi = \">=1.51\"\n", hex.EncodeToString(measurement))
	if root != nil {
		p += "emulated_root = '''\n" + string(root.ARKPEM()) + string(root.ASKPEM()) + "'''\n"
	}
	return p
}

func tdxPolicy(mrtd []byte, root *emulated.TDXRoot) string {
	p := fmt.Sprintf("[tdx]\nmrtd = [%q]\nallow_any_kernel = true\n", hex.EncodeToString(mrtd))
	if root != nil {
		p += "emulated_root = '''\n" + string(root.RootPEM()) + "'''\n"
	}
	return p
}

func TestSNPEmulatedEndToEnd(t *testing.T) {
	useEmulationDir(t)
	prov, err := snpbackend.EmulatedProvider()
	if err != nil {
		t.Fatal(err)
	}
	m := prov.Options.Measurement[:]

	t.Run("policy pass", func(t *testing.T) {
		url, https, root := startSteward(t, snpPolicy(m, prov.Root))
		addr, err := runKeep(t, prov, url, https)
		if err != nil {
			t.Fatal(err)
		}
		att := relyingParty(t, addr, root)
		c := att.Claims
		if c.Kind != attest.KindSNP || c.HardwareBacked || c.Debug || att.StewardDebug || !bytes.Equal(c.Measurement, m) {
			t.Fatalf("attested as %+v (steward debug %v); want snp, not hardware-backed, measurement %x", c, att.StewardDebug, m)
		}
		if !c.WorkloadBound {
			t.Fatalf("the report data did not bind the workload: %+v", c)
		}
	})
	t.Run("report data names another workload", func(t *testing.T) {
		url, https, _ := startSteward(t, snpPolicy(m, prov.Root))
		_, err := runKeep(t, otherWorkload{prov}, url, https)
		if err == nil || !strings.Contains(err.Error(), "evidence.workload") {
			t.Fatalf("want the Keep refused with evidence.workload, got %v", err)
		}
	})
	for name, tc := range map[string]struct {
		policy string
		opts   emulated.SNPOptions
		code   string
	}{
		"wrong measurement":           {snpPolicy(bytes.Repeat([]byte{1}, 48), prov.Root), prov.Options, "snp.policy.measurement"},
		"debug bit":                   {snpPolicy(m, prov.Root), emulated.SNPOptions{Measurement: prov.Options.Measurement, Debug: true}, "snp.policy.debug"},
		"production policy (no root)": {snpPolicy(m, nil), prov.Options, "snp.vcek.chain"},
	} {
		t.Run(name, func(t *testing.T) {
			url, https, _ := startSteward(t, tc.policy)
			p := *prov
			p.Options = tc.opts
			_, err := runKeep(t, &p, url, https)
			if err == nil || !strings.Contains(err.Error(), tc.code) {
				t.Fatalf("want the Keep refused with %s, got %v", tc.code, err)
			}
		})
	}
}

// otherWorkload binds the right key but another workload into the report
// data (the last byte of the workload binding changed).
type otherWorkload struct{ attest.EvidenceProvider }

func (o otherWorkload) Evidence(ctx context.Context, rd [64]byte) ([]byte, error) {
	rd[63] ^= 1
	return o.EvidenceProvider.Evidence(ctx, rd)
}

func TestTDXEmulatedEndToEnd(t *testing.T) {
	useEmulationDir(t)
	prov, err := tdxbackend.EmulatedProvider()
	if err != nil {
		t.Fatal(err)
	}
	mrtd := prov.Options.MRTD[:]

	t.Run("policy pass", func(t *testing.T) {
		url, https, root := startSteward(t, tdxPolicy(mrtd, prov.Root))
		addr, err := runKeep(t, prov, url, https)
		if err != nil {
			t.Fatal(err)
		}
		att := relyingParty(t, addr, root)
		c := att.Claims
		if c.Kind != attest.KindTDX || c.HardwareBacked || c.Debug || !bytes.Equal(c.Measurement, mrtd) {
			t.Fatalf("attested as %+v; want tdx, not hardware-backed, MRTD %x", c, mrtd)
		}
	})
	debug := prov.Options
	debug.Debug = true
	for name, tc := range map[string]struct {
		policy string
		opts   emulated.TDXOptions
		code   string
	}{
		"wrong measurement":           {tdxPolicy(bytes.Repeat([]byte{1}, 48), prov.Root), prov.Options, "tdx.policy.mrtd"},
		"debug bit":                   {tdxPolicy(mrtd, prov.Root), debug, "tdx.policy.debug"},
		"production policy (no root)": {tdxPolicy(mrtd, nil), prov.Options, "tdx.pck.chain"},
	} {
		t.Run(name, func(t *testing.T) {
			url, https, _ := startSteward(t, tc.policy)
			p := *prov
			p.Options = tc.opts
			_, err := runKeep(t, &p, url, https)
			if err == nil || !strings.Contains(err.Error(), tc.code) {
				t.Fatalf("want the Keep refused with %s, got %v", tc.code, err)
			}
		})
	}
}
