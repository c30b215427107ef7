package identity

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/crypto/x509roots/fallback/bundle"

	"github.com/enarx-go/enarx/config"
)

// Enarx.toml client_auth values for listen entries with prot = "tls".
const (
	ClientAuthNone    = "none"    // default, as upstream: no client certificate
	ClientAuthSteward = "steward" // client certificate must chain to the Keep's Steward CA
	ClientAuthCA      = "ca"      // client certificate must chain to client_ca
)

// ServerTLS returns the TLS configuration for a listen entry with
// prot = "tls": TLS 1.3 only, presenting the Keep chain, with client
// certificates required and verified when f.TLS.ClientAuth asks for it, and
// the ALPN protocols from f.TLS.ALPN.
func (id *Identity) ServerTLS(f config.File) (*tls.Config, error) {
	if f.Kind != config.KindListen {
		return nil, fmt.Errorf("%s: TLS server configuration for a %q entry (want listen)", f.Name, f.Kind)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.Certificate()},
	}
	opts := f.TLS
	if opts == nil {
		return cfg, nil
	}
	cfg.NextProtos = append([]string(nil), opts.ALPN...)
	switch opts.ClientAuth {
	case "", ClientAuthNone:
		if opts.ClientCA != "" {
			return nil, fmt.Errorf("%s: client_ca is set but client_auth is not \"ca\"", f.Name)
		}
	case ClientAuthSteward:
		if id.stewardCA == nil {
			return nil, fmt.Errorf("%s: client_auth = \"steward\" needs a steward in Enarx.toml (this keep has a self-signed certificate)", f.Name)
		}
		pool := x509.NewCertPool()
		pool.AddCert(id.stewardCA)
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	case ClientAuthCA:
		pool, err := parsePEMPool(opts.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("%s: client_ca: %w", f.Name, err)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	default:
		return nil, fmt.Errorf("%s: unknown client_auth %q (want \"none\", \"steward\" or \"ca\")", f.Name, opts.ClientAuth)
	}
	return cfg, nil
}

// ClientTLS returns the TLS configuration for a connect entry with
// prot = "tls": TLS 1.3 only, verifying the server's certificate for
// f.TLS.ServerName (default f.Host) against f.TLS.CA when given, else the
// embedded Mozilla roots (never the host's), offering f.TLS.ALPN and
// presenting the Keep chain when the server asks for a client certificate.
func (id *Identity) ClientTLS(f config.File) (*tls.Config, error) {
	if f.Kind != config.KindConnect {
		return nil, fmt.Errorf("%s: TLS client configuration for a %q entry (want connect)", f.Name, f.Kind)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.Certificate()},
		ServerName:   f.Host,
		RootCAs:      mozillaRoots(),
	}
	if opts := f.TLS; opts != nil {
		if opts.ServerName != "" {
			cfg.ServerName = opts.ServerName
		}
		if opts.CA != "" {
			pool, err := parsePEMPool(opts.CA)
			if err != nil {
				return nil, fmt.Errorf("%s: ca: %w", f.Name, err)
			}
			cfg.RootCAs = pool
		}
		cfg.NextProtos = append([]string(nil), opts.ALPN...)
	}
	if cfg.ServerName == "" {
		return nil, fmt.Errorf("%s: no host or server_name to verify the server's certificate against", f.Name)
	}
	return cfg, nil
}

// parsePEMPool parses inline PEM certificates (from Enarx.toml). Every
// block must be a CERTIFICATE; anything else (a private key pasted by
// mistake, garbage) is an error, and the block's content is never echoed.
func parsePEMPool(s string) (*x509.CertPool, error) {
	rest := []byte(s)
	pool := x509.NewCertPool()
	n := 0
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is %q, want CERTIFICATE", n+1, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM certificate %d: %w", n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("text that is not a PEM certificate")
	}
	if n == 0 {
		return nil, errors.New("no PEM certificates")
	}
	return pool, nil
}

// mozillaRoots is the Mozilla (NSS) root set embedded in the binary by
// golang.org/x/crypto/x509roots/fallback/bundle, with its distrust-after
// constraints. The Keep uses it instead of the system roots because the
// host's file system is untrusted.
var mozillaRoots = sync.OnceValue(func() *x509.CertPool {
	p := x509.NewCertPool()
	for r := range bundle.Roots() {
		c, err := x509.ParseCertificate(r.Certificate)
		if err != nil {
			// The bundle is compiled in and tested upstream; a root that
			// does not parse is skipped rather than trusted.
			continue
		}
		if r.Constraint != nil {
			p.AddCertWithConstraint(c, r.Constraint)
		} else {
			p.AddCert(c)
		}
	}
	return p
})
