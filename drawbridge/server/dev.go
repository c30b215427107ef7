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

	"github.com/enarx-go/enarx/drawbridge/internal/httpapi"
	"github.com/enarx-go/enarx/drawbridge/internal/store"
	"github.com/enarx-go/enarx/drawbridge/types"
	"github.com/enarx-go/enarx/internal/atomicfile"
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
)

const (
	// devUser is the user name and token subject of dev mode.
	devUser = "dev"
	// devIssuer and devAudience are the dev token's iss and aud.
	devIssuer   = "https://drawbridge-dev.invalid/"
	devAudience = "drawbridge-dev"

	devTokenLifetime = 30 * 24 * time.Hour
)

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
	if err := atomicfile.Write(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	return k, nil
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
	if err := atomicfile.Write(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, nil, err
	}
	c, _ := x509.ParseCertificate(der)
	return c, key, nil
}

// issueServerCert signs a TLS server certificate for hosts (DNS names or
// IP addresses) with a CA, valid for validity.
func issueServerCert(ca *x509.Certificate, caKey crypto.Signer, hosts []string, validity time.Duration) (tls.Certificate, error) {
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

// mintDevToken signs a dev-mode token.
func mintDevToken(key *ecdsa.PrivateKey, subject string, lifetime time.Duration) (string, error) {
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "dev"))
	if err != nil {
		return "", err
	}
	now := time.Now()
	return jwt.Signed(s).Claims(map[string]any{
		"iss":   devIssuer,
		"sub":   subject,
		"aud":   []string{devAudience},
		"scope": "openid manage:drawbridge_users manage:drawbridge_repositories manage:drawbridge_tags",
		"iat":   now.Unix(),
		"exp":   now.Add(lifetime).Unix(),
	}).Serialize()
}

// setupDev makes (or reloads) dev mode's CA, server certificate and token
// issuer in the store directory, and opens the store with the dev user in
// it.
func setupDev(ctx context.Context, o Options, log *slog.Logger) (*setup, error) {
	dir := o.Store
	if strings.Contains(dir, "://") {
		return nil, fmt.Errorf("--store must be a directory in dev mode, not %q", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	s := &setup{tls: newTLSConfig(), devSubject: devUser}
	if err := devTLS(s.tls, dir, o); err != nil {
		return nil, err
	}
	issKey, err := loadOrCreateKey(filepath.Join(dir, DevIssuerKeyFile))
	if err != nil {
		return nil, fmt.Errorf("dev token key: %w", err)
	}
	tok, err := mintDevToken(issKey, devUser, devTokenLifetime)
	if err != nil {
		return nil, err
	}
	s.tokens = httpapi.NewStaticVerifier(devIssuer, devAudience, &issKey.PublicKey)
	if s.registry, err = openDevStore(ctx, dir); err != nil {
		return nil, err
	}
	// The token file is written once the server listens, so a script can
	// wait for it: remove the previous start's file, now that this process
	// holds the store's lock.
	tokenFile := filepath.Join(dir, DevTokenFile)
	if err := os.Remove(tokenFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.registry.Close()
		return nil, err
	}
	s.writeDevToken = func() error {
		return atomicfile.Write(tokenFile, []byte(tok+"\n"), 0o600)
	}
	for _, line := range []string{
		"DEV MODE: NOT FOR PRODUCTION. This registry trusts its own token issuer and certificate authority.",
		"DEV MODE: CA certificate (pass to clients as --ca-bundle): " + filepath.Join(dir, DevCAFile),
		"DEV MODE: bearer token for user 'dev' (--insecure-auth-token): " + tokenFile,
		"DEV MODE: publish with the dev token to " + o.Addr + "/<user>/<repo>:<version>; missing users and (public) repositories are created on first publish.",
	} {
		log.Warn(line)
	}
	return s, nil
}

// devTLS gives conf a server certificate from the dev CA for the local
// names and the listen address, and trusts client certificates from the
// dev CA (or from --ca, if given).
func devTLS(conf *tls.Config, dir string, o Options) error {
	ca, caKey, err := devCA(dir)
	if err != nil {
		return fmt.Errorf("dev CA: %w", err)
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
	cert, err := issueServerCert(ca, caKey, hosts, 30*24*time.Hour)
	if err != nil {
		return fmt.Errorf("server certificate: %w", err)
	}
	conf.Certificates = []tls.Certificate{cert}
	conf.ClientCAs = x509.NewCertPool()
	conf.ClientCAs.AddCert(ca)
	if o.CA != "" {
		if conf.ClientCAs, err = loadCAs(o.CA); err != nil {
			return err
		}
	}
	return nil
}

// openDevStore opens the store directory with the dev user in it.
func openDevStore(ctx context.Context, dir string) (*store.Registry, error) {
	reg, err := openStore(ctx, dir)
	if err != nil {
		return nil, err
	}
	body := []byte(`{"subject":"` + devUser + `"}`)
	d, n := types.Compute(body)
	if err := reg.CreateUser(ctx, devUser, types.Meta{Digest: d, Length: n, Type: "application/json"}, body); err != nil && !errors.Is(err, store.ErrExists) {
		reg.Close()
		return nil, fmt.Errorf("creating user %s: %w", devUser, err)
	}
	return reg, nil
}
