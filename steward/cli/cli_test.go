package cli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attest/certext"
	"github.com/enarx-go/enarx/attestation/conformance/vectors"
	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/internal/version"
	"github.com/enarx-go/enarx/steward"
)

// server runs the steward command with args on 127.0.0.1 and returns its
// address, its log, and a stop function that returns the command's error.
func server(t *testing.T, args ...string) (addr string, logs *syncBuffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	o := &options{}
	listening := make(chan net.Addr, 1)
	o.onListening = func(a net.Addr) { listening <- a }
	cmd := newCommand(ctx, o)
	logs = &syncBuffer{}
	cmd.SetErr(logs)
	cmd.SetOut(io.Discard)
	cmd.SetArgs(append([]string{"--addr", "127.0.0.1", "--port", "0"}, args...))
	done := make(chan error, 1)
	go func() { done <- cmd.Execute() }()
	select {
	case a := <-listening:
		addr = a.String()
	case err := <-done:
		cancel()
		t.Fatalf("steward exited: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("steward did not start")
	}
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return addr, logs, stop
}

func kvmCSR(t *testing.T) []byte {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		ExtraExtensions: []pkix.Extension{{Id: attest.OIDEvidenceKVM, Value: []byte{}}}}, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func postCSR(t *testing.T, c *http.Client, url string, der []byte) (int, []byte) {
	t.Helper()
	resp, err := c.Post(url, steward.ContentTypePKCS10, bytes.NewReader(der))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestHostModeIsDebug(t *testing.T) {
	addr, logs, stop := server(t, "--host", "steward.test", "--san", "keep.test,127.0.0.1")
	status, body := postCSR(t, http.DefaultClient, "http://"+addr+"/", kvmCSR(t))
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	var chain []asn1.RawValue
	if _, err := asn1.Unmarshal(body, &chain); err != nil || len(chain) != 2 {
		t.Fatalf("reply: %d certificates, %v", len(chain), err)
	}
	leaf, err := x509.ParseCertificate(chain[1].FullBytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, a, err := certext.FromCertificate(leaf); err != nil || a == nil || !a.StewardDebug {
		t.Fatalf("attested-as %+v %v", a, err)
	}
	if leaf.DNSNames[0] != "keep.test" || !leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("SANs %v %v", leaf.DNSNames, leaf.IPAddresses)
	}
	if err := stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if !strings.Contains(logs.String(), "DEBUG MODE") {
		t.Fatalf("debug mode not logged:\n%s", logs)
	}
}

// TestUpstreamTestCA loads upstream's self-signed test CA from the
// environment variables upstream uses (as PEM text and as file names).
func TestUpstreamTestCA(t *testing.T) {
	dir := t.TempDir()
	key, crt := filepath.Join(dir, "ca.key"), filepath.Join(dir, "ca.crt")
	writeUpstreamCA(t, key, crt)
	t.Setenv("STEWARD_KEY", key)
	t.Setenv("STEWARD_CRT", crt)
	addr, _, _ := server(t)
	status, body := postCSR(t, http.DefaultClient, "http://"+addr+"/", kvmCSR(t))
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	// PEM text in the variable works too.
	k, _ := os.ReadFile(key)
	t.Setenv("STEWARD_KEY", string(k))
	addr, _, _ = server(t)
	if status, body := postCSR(t, http.DefaultClient, "http://"+addr+"/", kvmCSR(t)); status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
}

// writeUpstreamCA writes upstream Steward's test CA (testdata/ca.{key,crt}).
func writeUpstreamCA(t *testing.T, key, crt string) {
	t.Helper()
	for src, dst := range map[string]string{"ca.key": key, "ca.crt": crt} {
		b, err := os.ReadFile(filepath.Join("testdata", src))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestProductionCAFilesAndTLS: a CA issued by another CA (not debug), an
// @file.toml argument file, and HTTPS serving.
func TestProductionCAFilesAndTLS(t *testing.T) {
	dir := t.TempDir()
	root, rootKey := newCA(t, "Root", nil, nil)
	inter, interKey := newCA(t, "Steward", root, rootKey)
	writePEM(t, filepath.Join(dir, "key.pem"), "PRIVATE KEY", pkcs8(t, interKey))
	writePEM(t, filepath.Join(dir, "crt.pem"), "CERTIFICATE", inter.Raw, root.Raw)

	// A TLS server certificate for 127.0.0.1 from the same root.
	tlsKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tlsTmpl := &x509.Certificate{SerialNumber: big.NewInt(9), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	tlsDER, err := x509.CreateCertificate(rand.Reader, tlsTmpl, root, &tlsKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, "tls.crt"), "CERTIFICATE", tlsDER)
	writePEM(t, filepath.Join(dir, "tls.key"), "PRIVATE KEY", pkcs8(t, tlsKey))

	args := filepath.Join(dir, "args.toml")
	if err := os.WriteFile(args, []byte(`key = "`+filepath.Join(dir, "key.pem")+`"
crt = "`+filepath.Join(dir, "crt.pem")+`"
san = ["keep.test"]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	expanded, err := expandArgFiles([]string{"@" + args, "--tls-cert", filepath.Join(dir, "tls.crt"), "--tls-key", filepath.Join(dir, "tls.key")})
	if err != nil {
		t.Fatal(err)
	}
	addr, logs, _ := server(t, expanded...)
	pool := x509.NewCertPool()
	pool.AddCert(root)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	status, body := postCSR(t, client, "https://"+addr+"/", kvmCSR(t))
	if status != http.StatusBadRequest || !strings.HasPrefix(string(body), "kvm.not-allowed: ") {
		t.Fatalf("production CA accepted no-hardware evidence: %d %q", status, body)
	}
	if strings.Contains(logs.String(), "DEBUG MODE") {
		t.Fatal("production CA logged debug mode")
	}
	if strings.Contains(logs.String(), "open to other users") {
		t.Errorf("key files of mode 0600 warned about:\n%s", logs)
	}
	// Plain HTTP to the TLS port fails.
	if resp, err := http.Get("http://" + addr + "/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP served on the TLS port")
		}
	}
}

// TestExposedKeyWarned: a CA key or TLS key file that others may read, or
// its group write, is warned about, naming the flag and the mode (and never
// the key); group read (deploy/k8s's 0440) is not.
func TestExposedKeyWarned(t *testing.T) {
	dir := t.TempDir()
	root, rootKey := newCA(t, "Root", nil, nil)
	inter, interKey := newCA(t, "Steward", root, rootKey)
	keyFile, crtFile := filepath.Join(dir, "key.pem"), filepath.Join(dir, "crt.pem")
	writePEM(t, keyFile, "PRIVATE KEY", pkcs8(t, interKey))
	writePEM(t, crtFile, "CERTIFICATE", inter.Raw, root.Raw)
	tlsKey := filepath.Join(dir, "tls.key")
	writePEM(t, tlsKey, "PRIVATE KEY", pkcs8(t, rootKey))
	tlsDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(9),
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}, root, &rootKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, "tls.crt"), "CERTIFICATE", tlsDER)
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tlsKey, 0o660); err != nil {
		t.Fatal(err)
	}
	_, logs, stop := server(t, "--key", keyFile, "--crt", crtFile, "--tls-cert", filepath.Join(dir, "tls.crt"), "--tls-key", tlsKey)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, want := range []string{"flag=--key path=" + keyFile + " mode=-rw-r--r--", "flag=--tls-key path=" + tlsKey + " mode=-rw-rw----"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "open to other users") != 2 {
		t.Errorf("want two warnings:\n%s", out)
	}
	if strings.Contains(out, "PRIVATE KEY") {
		t.Errorf("log shows key material:\n%s", out)
	}

	// Shared with the group for reading only: quiet.
	for _, f := range []string{keyFile, tlsKey} {
		if err := os.Chmod(f, 0o440); err != nil {
			t.Fatal(err)
		}
	}
	_, logs, stop = server(t, "--key", keyFile, "--crt", crtFile, "--tls-cert", filepath.Join(dir, "tls.crt"), "--tls-key", tlsKey)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "open to other users") {
		t.Errorf("mode 0440 warned about:\n%s", logs)
	}
}

// TestVerifyTime: the flag parses and is logged loudly.
func TestVerifyTime(t *testing.T) {
	_, logs, _ := server(t, "--host", "h", "--verify-time", vectors.Time.Format(time.RFC3339))
	if !strings.Contains(logs.String(), "PINNED") || !strings.Contains(logs.String(), "2023-02-01") {
		t.Fatalf("pinned clock not logged:\n%s", logs)
	}
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	key, crt := filepath.Join(dir, "ca.key"), filepath.Join(dir, "ca.crt")
	writeUpstreamCA(t, key, crt)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no CA", nil, "--key and --crt"},
		{"key without crt", []string{"--key", key}, "together"},
		{"bad verify time", []string{"--host", "h", "--verify-time", "yesterday"}, "RFC 3339"},
		{"tls cert without key", []string{"--host", "h", "--tls-cert", crt}, "together"},
		{"bad SAN", []string{"--host", "h", "--san", "not a name"}, "SAN"},
		{"key is a certificate", []string{"--key", crt, "--crt", crt}, "PRIVATE KEY"},
		{"bad log level", []string{"--host", "h", "--log-level", "loud"}, "--log-level"},
		{"positional argument", []string{"--host", "h", "extra"}, "unknown command"},
		{"no connections", []string{"--host", "h", "--max-connections", "0"}, "--max-connections 0: want at least 1"},
		// 0 became the 1 MiB default, silently.
		{"no body", []string{"--host", "h", "--max-body", "0"}, "--max-body 0: want at least 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := Execute(context.Background(), append([]string{"--addr", "127.0.0.1", "--port", "0"}, tc.args...), io.Discard, &stderr)
			if code == 0 || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q, want it to mention %q", code, stderr.String(), tc.want)
			}
		})
	}
}

func TestVersionFlag(t *testing.T) {
	var stdout bytes.Buffer
	if code := Execute(context.Background(), []string{"--version"}, &stdout, io.Discard); code != 0 || stdout.String() != "steward version "+version.Version+"\n" {
		t.Fatalf("--version: exit %d, %q", code, stdout.String())
	}
}

func TestExpandArgFiles(t *testing.T) {
	f := filepath.Join(t.TempDir(), "a.toml")
	if err := os.WriteFile(f, []byte("port = 8080\nhost = \"h\"\nsan = [\"a\", \"b\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := expandArgFiles([]string{"-a", "::1", "@" + f})
	if err != nil {
		t.Fatal(err)
	}
	want := "-a ::1 --host=h --port=8080 --san=a --san=b"
	if strings.Join(got, " ") != want {
		t.Fatalf("got %q, want %q", strings.Join(got, " "), want)
	}
	if err := os.WriteFile(f, []byte("[table]\nx = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := expandArgFiles([]string{"@" + f}); err == nil {
		t.Fatal("nested table accepted")
	}
	if _, err := expandArgFiles([]string{"@/nonexistent.toml"}); err == nil {
		t.Fatal("missing file accepted")
	}
}

func newCA(t *testing.T, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	if parent == nil {
		parent, parentKey = tmpl, k
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &k.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, k
}

func pkcs8(t *testing.T, k *ecdsa.PrivateKey) []byte {
	b, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writePEM(t *testing.T, path, typ string, ders ...[]byte) {
	t.Helper()
	var b bytes.Buffer
	for _, d := range ders {
		_ = pem.Encode(&b, &pem.Block{Type: typ, Bytes: d})
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// productionCAFiles writes an intermediate CA (not self-issued) and its
// root as PEM files and returns their names.
func productionCAFiles(t *testing.T) (key, crt string) {
	t.Helper()
	dir := t.TempDir()
	root, rootKey := newCA(t, "Root", nil, nil)
	inter, interKey := newCA(t, "Steward", root, rootKey)
	key, crt = filepath.Join(dir, "key.pem"), filepath.Join(dir, "crt.pem")
	writePEM(t, key, "PRIVATE KEY", pkcs8(t, interKey))
	writePEM(t, crt, "CERTIFICATE", inter.Raw, root.Raw)
	return key, crt
}

// TestPolicyReplaysRecordedEvidence is the conformance path through the
// command: a production CA, upstream's policy file and the verification
// clock pinned to 2023-02-01 issue certificates for all three CSRs
// captured on SGX and SEV-SNP hardware; without the pinned clock the
// expired collateral is refused.
func TestPolicyReplaysRecordedEvidence(t *testing.T) {
	key, crt := productionCAFiles(t)
	pol := filepath.Join(t.TempDir(), "steward.toml")
	if err := os.WriteFile(pol, vectors.StewardTOML, 0o600); err != nil {
		t.Fatal(err)
	}
	addr, _, _ := server(t, "-k", key, "-c", crt, "--config", pol, "--verify-time", "2023-02-01T00:00:00Z")
	for name, tc := range map[string]struct {
		csr  []byte
		kind attest.Kind
	}{
		"SGX i5":    {vectors.SGXi5CSR, attest.KindSGX},
		"SGX Xeon":  {vectors.SGXXeonCSR, attest.KindSGX},
		"SNP Milan": {vectors.MilanCSR, attest.KindSNP},
	} {
		t.Run(name, func(t *testing.T) {
			status, body := postCSR(t, http.DefaultClient, "http://"+addr+"/", tc.csr)
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, body)
			}
			var chain []asn1.RawValue
			if _, err := asn1.Unmarshal(body, &chain); err != nil || len(chain) != 3 {
				t.Fatalf("chain: %d certificates, %v", len(chain), err)
			}
			leaf, err := x509.ParseCertificate(chain[2].FullBytes)
			if err != nil {
				t.Fatal(err)
			}
			_, a, err := certext.FromCertificate(leaf)
			if err != nil || a == nil || a.Claims.Kind != tc.kind || !a.Claims.HardwareBacked || a.StewardDebug || len(a.Claims.Measurement) == 0 {
				t.Fatalf("attested-as %+v %v", a, err)
			}
		})
	}
	addr, _, _ = server(t, "-k", key, "-c", crt, "--config", pol)
	if status, body := postCSR(t, http.DefaultClient, "http://"+addr+"/", vectors.MilanCSR); status != http.StatusBadRequest || !strings.HasPrefix(string(body), "snp.") {
		t.Fatalf("wall clock: %d %q, want an snp.* rejection", status, body)
	}
	// Empty hardware evidence is refused by the verifier, with its code.
	// Upstream's policy has no [tdx] table, so TDX evidence has no
	// verifier and is refused as upstream refuses it (no TDX there).
	for prefix, oid := range map[string]asn1.ObjectIdentifier{"snp.": attest.OIDEvidenceSNP, "sgx.": attest.OIDEvidenceSGX, steward.CodeEvidenceUnsupported + ":": attest.OIDEvidenceTDX} {
		k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
			ExtraExtensions: []pkix.Extension{{Id: oid, Value: []byte{}}}}, k)
		if err != nil {
			t.Fatal(err)
		}
		if status, body := postCSR(t, http.DefaultClient, "http://"+addr+"/", der); status != http.StatusBadRequest || !strings.HasPrefix(string(body), prefix) {
			t.Fatalf("empty %s evidence: %d %q", prefix, status, body)
		}
	}
	// No-hardware evidence is refused by this production policy.
	if status, body := postCSR(t, http.DefaultClient, "http://"+addr+"/", kvmCSR(t)); status != http.StatusBadRequest || !strings.HasPrefix(string(body), "kvm.not-allowed") {
		t.Fatalf("KVM: %d %q", status, body)
	}
}

// TestPolicyNoneAndVerifyTime: the policy's explicit no-hardware switch and
// its verify_time key.
func TestPolicyNoneAndVerifyTime(t *testing.T) {
	key, crt := productionCAFiles(t)
	pol := filepath.Join(t.TempDir(), "p.toml")
	if err := os.WriteFile(pol, []byte("verify_time = 2023-02-01T00:00:00Z\n[none]\nallow = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, logs, _ := server(t, "-k", key, "-c", crt, "--config", pol)
	if status, body := postCSR(t, http.DefaultClient, "http://"+addr+"/", kvmCSR(t)); status != http.StatusOK {
		t.Fatalf("KVM with [none] allow: %d %s", status, body)
	}
	if l := logs.String(); !strings.Contains(l, "PINNED") || !strings.Contains(l, "2023-02-01") || !strings.Contains(l, "no-hardware") {
		t.Fatalf("policy clock / no-hardware switch not logged:\n%s", l)
	}
	if err := os.WriteFile(pol, []byte("[snp]\nhash = [\"00\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	if code := Execute(context.Background(), []string{"--addr", "127.0.0.1", "--port", "0", "-k", key, "-c", crt, "--config", pol}, io.Discard, &stderr); code == 0 || !strings.Contains(stderr.String(), "snp.hash") {
		t.Fatalf("bad policy: exit %d, %q", code, stderr.String())
	}
}

// TestKeyNeverInErrors: a --key (STEWARD_KEY) value that is neither PEM
// text starting with its -----BEGIN line nor a readable file is often the
// key itself, mangled on its way into the environment (quoted by an env
// file, base64-encoded by a secret store). The error must not print it.
func TestKeyNeverInErrors(t *testing.T) {
	dir := t.TempDir()
	key, crt := filepath.Join(dir, "ca.key"), filepath.Join(dir, "ca.crt")
	writeUpstreamCA(t, key, crt)
	pemKey, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemKey)
	for name, v := range map[string]string{
		"quoted PEM":     `"` + string(pemKey) + `"`,
		"escaped PEM":    `'` + strings.ReplaceAll(string(pemKey), "\n", `\n`) + `'`,
		"base64 of PEM":  base64.StdEncoding.EncodeToString(pemKey),
		"base64 DER key": base64.StdEncoding.EncodeToString(block.Bytes),
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("STEWARD_KEY", v)
			var stderr bytes.Buffer
			code := Execute(context.Background(), []string{"--crt", crt, "--addr", "127.0.0.1", "--port", "0"}, io.Discard, &stderr)
			if code == 0 {
				t.Fatal("steward started with a mangled key")
			}
			if mid := v[len(v)/2 : len(v)/2+16]; strings.Contains(stderr.String(), mid) {
				t.Fatalf("the error shows the key (%q): %q", mid, stderr.String())
			}
			if !strings.Contains(stderr.String(), "--key") {
				t.Fatalf("the error does not name --key: %q", stderr.String())
			}
		})
	}
	// A file name that does not exist is still named.
	var stderr bytes.Buffer
	missing := filepath.Join(dir, "missing.key")
	if code := Execute(context.Background(), []string{"--key", missing, "--crt", crt, "--addr", "127.0.0.1", "--port", "0"}, io.Discard, &stderr); code == 0 || !strings.Contains(stderr.String(), missing) {
		t.Fatalf("missing key file: exit %d, %q", code, stderr.String())
	}
}

// TestMaxConnections: --max-connections bounds the connections the Steward
// holds; at the bound an idle keep-alive connection is closed for a new
// one (a client could otherwise hold thousands, each costing memory).
func TestMaxConnections(t *testing.T) {
	addr, _, _ := server(t, "--host", "steward.test", "--max-connections", "1")
	testutil.CheckIdleMakesRoom(t, func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}, "steward.test", "/", "--max-connections 1")
}
