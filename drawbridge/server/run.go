// Package server runs the Drawbridge package registry for cmd/drawbridge:
// Run opens the store, sets up TLS and token verification (or, in dev
// mode, a self-contained CA and token issuer), and serves the HTTP API of
// drawbridge/internal/httpapi until its context ends.
//
// It trusts its Options (the operator's flags) and the files they name;
// everything a request carries is checked by httpapi and the store.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"gocloud.dev/blob"
	// Bucket URL schemes for --store: s3://, file://, mem://.
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/memblob"
	_ "gocloud.dev/blob/s3blob"

	"github.com/enarx-go/enarx/drawbridge/internal/httpapi"
	"github.com/enarx-go/enarx/drawbridge/internal/store"
	"github.com/enarx-go/enarx/internal/connlimit"
	"github.com/enarx-go/enarx/internal/keyfile"
)

// Options are the drawbridge command's settings.
type Options struct {
	Addr         string // listen address (TLS)
	Store        string // directory, or a gocloud bucket URL (s3://…, file://…)
	Cert, Key    string // PEM server chain and key
	CA           string // PEM CA(s) whose client certificates may read trees
	OIDCIssuer   string
	OIDCAudience string
	// RequireAttestedHardware lets a client certificate read private trees
	// only if its attested-as extension records hardware-backed evidence, a
	// TEE not in debug mode and a Steward not in debug mode.
	RequireAttestedHardware bool
	// Dev runs a self-contained registry for local use (see dev.go).
	Dev bool
	// MaxUploadSize bounds a tree node upload (0: DefaultMaxUploadSize).
	MaxUploadSize int64
	// VerifyAllDigests verifies uploaded files against every digest of
	// their entry, not only SHA-256.
	VerifyAllDigests bool
	// VerifyExisting verifies the trees of stored tags that are not yet
	// visible before serving (hashing every node the registry has not
	// verified, and recording the nodes that match), and makes those that
	// verify visible (to adopt an upstream store).
	VerifyExisting bool
	// MaxConns bounds the connections held open, MaxConnsPerIP those from
	// one address (package internal/connlimit: at a bound an idle
	// connection is closed for a new one; with none idle a new one over
	// MaxConnsPerIP is closed, one over MaxConns waits). 0 means
	// DefaultMaxConns and DefaultMaxConnsPerIP; MaxConnsPerIP below 0 is
	// no per-address bound (behind a proxy that hides client addresses).
	MaxConns, MaxConnsPerIP int
	// MaxDirectoryBuffers bounds the bytes of directory node uploads held
	// in memory at once (0: DefaultMaxDirectoryBuffers); an upload that
	// finds no room within DirectoryBufferWait (0:
	// DefaultDirectoryBufferWait; below 0: no wait) is refused with 503
	// and Retry-After.
	MaxDirectoryBuffers int64
	DirectoryBufferWait time.Duration
	// MaxUploadBuffers bounds the bytes of buffers node uploads of a MiB
	// or more take, in all, to be hashed and written pipelined (0:
	// DefaultMaxUploadBuffers; below 0: none is); one that finds no room
	// is copied with a small buffer, more slowly.
	MaxUploadBuffers int64
	Logger           *slog.Logger
	// Ready is called with the bound address once the server accepts
	// connections (optional).
	Ready func(net.Addr)
}

// DefaultAddr and DefaultDevAddr are the listen addresses when --addr is
// not given.
const (
	DefaultAddr    = "0.0.0.0:8080"
	DefaultDevAddr = "127.0.0.1:8443"
)

// Defaults of Options.MaxConns and MaxConnsPerIP: the memory of open
// connections (about 30 KiB each idle with TLS, more while a large node is
// batched) stays well inside deploy/k8s's 1 GiB.
const (
	DefaultMaxConns      = 2048
	DefaultMaxConnsPerIP = 128
)

func (o Options) connLimits() connlimit.Limits {
	l := connlimit.Limits{Max: o.MaxConns, PerIP: o.MaxConnsPerIP}
	if l.Max <= 0 {
		l.Max = DefaultMaxConns
	}
	switch {
	case l.PerIP == 0:
		l.PerIP = DefaultMaxConnsPerIP
	case l.PerIP < 0:
		l.PerIP = 0
	}
	return l
}

// DefaultMaxUploadSize bounds a tree node upload unless configured.
const DefaultMaxUploadSize = httpapi.DefaultMaxUploadSize

// Defaults of Options.MaxDirectoryBuffers, DirectoryBufferWait and
// MaxUploadBuffers, and the largest directory node (the least
// MaxDirectoryBuffers that lets one through without taking the whole
// budget).
const (
	DefaultMaxDirectoryBuffers = store.DefaultMaxDirectoryBuffers
	DefaultDirectoryBufferWait = store.DefaultDirectoryBufferWait
	DefaultMaxUploadBuffers    = store.DefaultMaxUploadBuffers
	MaxDirectorySize           = store.MaxDirectorySize
)

// Run serves until ctx is cancelled.
func Run(ctx context.Context, o Options) error {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	if o.Addr == "" {
		o.Addr = DefaultAddr
		if o.Dev {
			o.Addr = DefaultDevAddr
		}
	}
	if o.Store == "" {
		return errors.New("--store is required")
	}
	if o.Dev {
		if err := checkDevFlags(o); err != nil {
			return err
		}
	}
	var (
		s   *setup
		err error
	)
	if o.Dev {
		if s, err = setupDev(ctx, o, log); err != nil {
			return fmt.Errorf("dev mode: %w", err)
		}
	} else if s, err = setupProduction(ctx, o, log); err != nil {
		return err
	}
	defer s.registry.Close()
	if err := prepareRegistry(ctx, s.registry, o, log); err != nil {
		return err
	}
	h, err := httpapi.New(httpapi.Config{
		Registry:                s.registry,
		Tokens:                  s.tokens,
		Logger:                  log,
		MaxUploadSize:           o.MaxUploadSize,
		DevSubject:              s.devSubject,
		RequireAttestedHardware: o.RequireAttestedHardware,
	})
	if err != nil {
		return err
	}
	return serve(ctx, o, log, h, s)
}

// checkDevFlags refuses dev mode together with production's certificate
// and token settings, which dev mode would ignore: it makes its own server
// certificate and trusts only its own token issuer. A production command
// line or config file that also says dev must not start a dev registry.
func checkDevFlags(o Options) error {
	var given []string
	for _, f := range []struct{ flag, v string }{{"--cert", o.Cert}, {"--key", o.Key}, {"--oidc-issuer", o.OIDCIssuer}, {"--oidc-audience", o.OIDCAudience}} {
		if f.v != "" {
			given = append(given, f.flag)
		}
	}
	if len(given) == 0 {
		return nil
	}
	return fmt.Errorf("--dev cannot be combined with %s: dev mode makes its own certificate and trusts only its own tokens; "+
		"drop --dev (or dev = true in the config file) for a production registry, or those settings for a local one",
		strings.Join(given, ", "))
}

// setup is what Run serves with: production and dev mode make it
// differently.
type setup struct {
	registry *store.Registry
	tokens   httpapi.TokenVerifier
	tls      *tls.Config
	// devSubject is the dev token's subject (dev mode only).
	devSubject string
	// writeDevToken, in dev mode, writes the token file once the server
	// listens.
	writeDevToken func() error
}

// newTLSConfig is the TLS configuration both modes start from.
func newTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// A client certificate is optional; if one is presented it must
		// chain to --ca, and then it may read trees (reference §3.4).
		ClientAuth: tls.VerifyClientCertIfGiven,
		// HTTP/1.1 only, as upstream: large bodies stream markedly faster
		// than through HTTP/2's framing and flow control, and a registry
		// gains little from multiplexing.
		NextProtos: []string{"http/1.1"},
	}
}

// setupProduction loads the server certificate and client CAs, runs OIDC
// discovery and opens the store.
func setupProduction(ctx context.Context, o Options, log *slog.Logger) (*setup, error) {
	var missing []string
	for _, f := range []struct{ flag, v string }{{"--cert", o.Cert}, {"--key", o.Key}, {"--oidc-issuer", o.OIDCIssuer}, {"--oidc-audience", o.OIDCAudience}} {
		if f.v == "" {
			missing = append(missing, f.flag)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("missing required flags %s (or use --dev for a local registry)", strings.Join(missing, ", "))
	}
	s := &setup{tls: newTLSConfig()}
	keyfile.WarnIfExposed(log, "--key", o.Key)
	cert, err := tls.LoadX509KeyPair(o.Cert, o.Key)
	if err != nil {
		return nil, fmt.Errorf("loading TLS certificate: %w", err)
	}
	s.tls.Certificates = []tls.Certificate{cert}
	if o.CA != "" {
		if s.tls.ClientCAs, err = loadCAs(o.CA); err != nil {
			return nil, err
		}
	} else {
		log.Warn("no --ca given: client certificates cannot read private trees")
		s.tls.ClientAuth = tls.NoClientCert
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	s.tokens, err = httpapi.NewOIDCVerifier(dctx, o.OIDCIssuer, o.OIDCAudience, nil)
	cancel()
	if err != nil {
		return nil, err
	}
	if s.registry, err = openStore(ctx, o.Store); err != nil {
		return nil, err
	}
	return s, nil
}

// prepareRegistry applies the store options, and adopts existing tags if
// asked to.
func prepareRegistry(ctx context.Context, reg *store.Registry, o Options, log *slog.Logger) error {
	reg.VerifyAllDigests = o.VerifyAllDigests
	reg.Logger = log
	reg.MaxDirectoryBuffers = o.MaxDirectoryBuffers
	reg.DirectoryBufferWait = o.DirectoryBufferWait
	reg.MaxUploadBuffers = o.MaxUploadBuffers
	if !o.VerifyExisting {
		return nil
	}
	n, err := reg.VerifyExisting(ctx, func(t store.TagRef, err error) {
		if err != nil {
			log.Warn("tag stays hidden: its tree does not verify", "tag", fmt.Sprintf("%s/%s:%s", t.User, t.Repo, t.Tag), "err", err)
		}
	})
	if err != nil {
		return fmt.Errorf("verifying existing tags: %w", err)
	}
	log.Info("verified existing tags", "made_visible", n)
	return nil
}

// serve listens on o.Addr and serves h over TLS until ctx ends, then shuts
// down gracefully (10 s at most).
func serve(ctx context.Context, o Options, log *slog.Logger, h http.Handler, s *setup) error {
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", o.Addr, err)
	}
	limited := connlimit.New(ln, o.connLimits(), log)
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         s.tls,
		ConnState:         limited.ConnState,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		// No HTTP/2 (see newTLSConfig).
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		// Large nodes leave in batches of TLS records.
		ConnContext: httpapi.ConnContext,
	}
	if s.writeDevToken != nil {
		if err := s.writeDevToken(); err != nil {
			ln.Close()
			return fmt.Errorf("dev mode: writing the token: %w", err)
		}
	}
	log.Info("listening", "addr", ln.Addr().String(), "store", o.Store, "dev", o.Dev)
	if o.Ready != nil {
		o.Ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(httpapi.Listener(limited), "", "") }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	log.Info("shutting down")
	return srv.Shutdown(sctx)
}

// openStore opens --store: a bucket URL if it contains "://", otherwise an
// existing directory.
func openStore(ctx context.Context, spec string) (*store.Registry, error) {
	if strings.Contains(spec, "://") {
		return openBucket(ctx, spec)
	}
	st, err := os.Stat(spec)
	if err != nil || !st.IsDir() {
		return nil, fmt.Errorf("store directory %s must exist (create it, or use --dev): %v", spec, err)
	}
	fs, err := store.OpenFS(spec)
	if err != nil {
		return nil, err
	}
	return store.NewRegistry(fs), nil
}

// openBucket opens a gocloud bucket URL as the store.
func openBucket(ctx context.Context, spec string) (*store.Registry, error) {
	// gocloud's fileblob cannot make a conditional create atomic across
	// processes, so a file:// bucket is taken by one registry at a time (an
	// flock on its directory), like a store directory.
	var lock *os.File
	if u, err := url.Parse(spec); err == nil && u.Scheme == "file" {
		if lock, err = lockDir(u.Path); err != nil {
			return nil, err
		}
	}
	b, err := blob.OpenBucket(ctx, spec)
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		return nil, fmt.Errorf("opening bucket %s: %w", spec, err)
	}
	var backend store.Backend = store.NewBlob(b)
	if lock != nil {
		backend = lockedBackend{backend, lock}
	}
	return store.NewRegistry(backend), nil
}

// lockDir takes an exclusive flock on directory dir; closing the file
// releases it.
func lockDir(dir string) (*os.File, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("opening bucket directory %s: %w", dir, err)
	}
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		d.Close()
		return nil, fmt.Errorf("bucket directory %s is in use by another drawbridge process (flock: %w); a file:// bucket serves one registry, use s3:// (or another object store) to share storage between replicas", dir, err)
	}
	return d, nil
}

// lockedBackend releases its directory lock when closed.
type lockedBackend struct {
	store.Backend
	lock *os.File
}

func (l lockedBackend) Close() error {
	err := l.Backend.Close()
	l.lock.Close()
	return err
}

// loadCAs reads a PEM bundle of CA certificates.
func loadCAs(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("CA bundle %s contains no PEM certificates", path)
	}
	return pool, nil
}
