package server

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/enarx-go/enarx/drawbridge/internal/store"
	"github.com/enarx-go/enarx/drawbridge/types"
)

// Dev mode: a registry a newcomer can use without an identity provider or
// a certificate authority. Everything it trusts is generated into the store
// directory, and it is trusted only when --dev is given:
//
//	DIR/dev-ca.pem          CA certificate that signs the server certificate
//	                        (give it to clients: --ca-bundle DIR/dev-ca.pem)
//	DIR/dev-ca-key.pem      its private key (0600)
//	DIR/dev-token           a bearer token for user "dev" with every scope,
//	                        valid 30 days, rewritten at each start once the
//	                        server listens, so it also says "ready" (0600)
//	DIR/dev-issuer-key.pem  the key that signs dev tokens (0600)
//
// The user "dev" exists from the start. When the dev token publishes a
// tag, a missing user (owned by the dev token) and a missing repository
// (public) are created first, so "publish" is the only step needed.
const (
	DevCAFile        = "dev-ca.pem"
	DevCAKeyFile     = "dev-ca-key.pem"
	DevTokenFile     = "dev-token"
	DevIssuerKeyFile = "dev-issuer-key.pem"

	// DevUser is the user name and token subject of dev mode.
	DevUser = "dev"
	// DevIssuer and DevAudience are the dev token's iss and aud.
	DevIssuer   = "https://drawbridge-dev.invalid/"
	DevAudience = "drawbridge-dev"

	devTokenLifetime = 30 * 24 * time.Hour
)

type devSetup struct {
	// writeToken writes DIR/dev-token; Run calls it once it listens.
	writeToken func() error
	registry   *store.Registry
	verifier   TokenVerifier
	cert       tls.Certificate
	clientCAs  *x509.CertPool
}

// loadOrCreateKey reads a PEM PKCS#8 EC key or creates one (0600).
func loadOrCreateKey(path string) (*ecdsa.PrivateKey, error) {
	if b, err := os.ReadFile(path); err == nil {
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("%s: no PEM block", path)
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%s: not an EC key", path)
		}
		return ek, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	if err := writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	return k, nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// devCA loads or creates the dev CA.
func devCA(dir string) (*x509.Certificate, crypto.Signer, error) {
	key, err := loadOrCreateKey(filepath.Join(dir, DevCAKeyFile))
	if err != nil {
		return nil, nil, err
	}
	path := filepath.Join(dir, DevCAFile)
	if b, err := os.ReadFile(path); err == nil {
		if blk, _ := pem.Decode(b); blk != nil {
			if c, err := x509.ParseCertificate(blk.Bytes); err == nil && key.PublicKey.Equal(c.PublicKey) && time.Now().Before(c.NotAfter.Add(-24*time.Hour)) {
				return c, key, nil
			}
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "drawbridge dev CA (NOT FOR PRODUCTION)"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	if err := writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, nil, err
	}
	c, _ := x509.ParseCertificate(der)
	return c, key, nil
}

// IssueServerCert signs a TLS server certificate for hosts (DNS names or
// IP addresses) with a CA, valid for validity.
func IssueServerCert(ca *x509.Certificate, caKey crypto.Signer, hosts []string, validity time.Duration) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Raw}, PrivateKey: key}, nil
}

// MintDevToken signs a dev-mode token.
func MintDevToken(key *ecdsa.PrivateKey, subject string, lifetime time.Duration) (string, error) {
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "dev"))
	if err != nil {
		return "", err
	}
	now := time.Now()
	return jwt.Signed(s).Claims(map[string]any{
		"iss":   DevIssuer,
		"sub":   subject,
		"aud":   []string{DevAudience},
		"scope": "openid manage:drawbridge_users manage:drawbridge_repositories manage:drawbridge_tags",
		"iat":   now.Unix(),
		"exp":   now.Add(lifetime).Unix(),
	}).Serialize()
}

func setupDev(ctx context.Context, o Options, log *slog.Logger) (*devSetup, error) {
	dir := o.Store
	if strings.Contains(dir, "://") {
		return nil, fmt.Errorf("--store must be a directory in dev mode, not %q", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	ca, caKey, err := devCA(dir)
	if err != nil {
		return nil, fmt.Errorf("dev CA: %w", err)
	}
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, _, err := net.SplitHostPort(o.Addr); err == nil && h != "" && h != "localhost" && h != "127.0.0.1" && h != "::1" {
		if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
			if hn, err := os.Hostname(); err == nil {
				hosts = append(hosts, hn)
			}
		} else {
			hosts = append(hosts, h)
		}
	}
	cert, err := IssueServerCert(ca, caKey, hosts, 30*24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	issKey, err := loadOrCreateKey(filepath.Join(dir, DevIssuerKeyFile))
	if err != nil {
		return nil, fmt.Errorf("dev token key: %w", err)
	}
	tok, err := MintDevToken(issKey, DevUser, devTokenLifetime)
	if err != nil {
		return nil, err
	}
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(ca)
	if o.CA != "" {
		if clientCAs, err = loadCAs(o.CA); err != nil {
			return nil, err
		}
	}
	reg, err := OpenStore(ctx, dir)
	if err != nil {
		return nil, err
	}
	body := []byte(`{"subject":"` + DevUser + `"}`)
	d, n := types.Compute(body)
	if err := reg.CreateUser(ctx, DevUser, types.Meta{Digest: d, Length: n, Type: "application/json"}, body); err != nil && !errors.Is(err, store.ErrExists) {
		reg.Close()
		return nil, fmt.Errorf("creating user %s: %w", DevUser, err)
	}
	// The token file is written once the server listens (writeToken), so
	// a script can wait for it: remove the previous start's file, now
	// that this process holds the store's lock.
	tokenFile := filepath.Join(dir, DevTokenFile)
	if err := os.Remove(tokenFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		reg.Close()
		return nil, err
	}
	for _, line := range []string{
		"DEV MODE: NOT FOR PRODUCTION. This registry trusts its own token issuer and certificate authority.",
		"DEV MODE: CA certificate (pass to clients as --ca-bundle): " + filepath.Join(dir, DevCAFile),
		"DEV MODE: bearer token for user 'dev' (--insecure-auth-token): " + filepath.Join(dir, DevTokenFile),
		"DEV MODE: publish with the dev token to " + o.Addr + "/<user>/<repo>:<version>; missing users and (public) repositories are created on first publish.",
	} {
		log.Warn(line)
	}
	return &devSetup{
		writeToken: func() error {
			return writeFileAtomic(tokenFile, []byte(tok+"\n"), 0o600)
		},
		registry:  reg,
		verifier:  NewStaticVerifier(DevIssuer, DevAudience, &issKey.PublicKey),
		cert:      cert,
		clientCAs: clientCAs,
	}, nil
}
