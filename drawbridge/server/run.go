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

	"github.com/enarx-go/enarx/drawbridge/internal/store"
)

// Options are the drawbridge command's settings.
type Options struct {
	Addr         string // listen address (TLS)
	Store        string // directory, or a gocloud bucket URL (s3://…, file://…)
	Cert, Key    string // PEM server chain and key
	CA           string // PEM CA(s) whose client certificates may read trees
	OIDCIssuer   string
	OIDCAudience string
	// RequireAttestedHardware: see Config.RequireAttestedHardware.
	RequireAttestedHardware bool
	// Dev runs a self-contained registry for local use (see dev.go).
	Dev           bool
	MaxUploadSize int64
	// VerifyAllDigests: see store.Registry.VerifyAllDigests.
	VerifyAllDigests bool
	// VerifyExisting runs store.Registry.VerifyExisting before serving
	// (to adopt an upstream store).
	VerifyExisting bool
	Logger         *slog.Logger
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

// OpenStore opens --store: a bucket URL if it contains "://", otherwise an
// existing directory.
func OpenStore(ctx context.Context, spec string) (*store.Registry, error) {
	if strings.Contains(spec, "://") {
		// gocloud's fileblob cannot make a conditional create atomic
		// across processes, so a file:// bucket is taken by one registry
		// at a time (an flock on its directory), like a store directory.
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
	tlsConf := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// A client certificate is optional; if one is presented it must
		// chain to --ca, and then it may read trees (reference §3.4).
		ClientAuth: tls.VerifyClientCertIfGiven,
	}
	var (
		reg    *store.Registry
		tokens TokenVerifier
		cfg    Config
		err    error
		// writeDevToken, in dev mode, writes the token file once the
		// server listens.
		writeDevToken func() error
	)
	if o.Dev {
		d, err := setupDev(ctx, o, log)
		if err != nil {
			return fmt.Errorf("dev mode: %w", err)
		}
		reg, tokens = d.registry, d.verifier
		tlsConf.Certificates = []tls.Certificate{d.cert}
		tlsConf.ClientCAs = d.clientCAs
		cfg.DevSubject = DevUser
		writeDevToken = d.writeToken
	} else {
		var missing []string
		for flag, v := range map[string]string{"--cert": o.Cert, "--key": o.Key, "--oidc-issuer": o.OIDCIssuer, "--oidc-audience": o.OIDCAudience} {
			if v == "" {
				missing = append(missing, flag)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("missing required flags %s (or use --dev for a local registry)", strings.Join(missing, ", "))
		}
		cert, err := tls.LoadX509KeyPair(o.Cert, o.Key)
		if err != nil {
			return fmt.Errorf("loading TLS certificate: %w", err)
		}
		tlsConf.Certificates = []tls.Certificate{cert}
		if o.CA != "" {
			if tlsConf.ClientCAs, err = loadCAs(o.CA); err != nil {
				return err
			}
		} else {
			log.Warn("no --ca given: client certificates cannot read private trees")
			tlsConf.ClientAuth = tls.NoClientCert
		}
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		tokens, err = NewOIDCVerifier(dctx, o.OIDCIssuer, o.OIDCAudience, nil)
		cancel()
		if err != nil {
			return err
		}
		if reg, err = OpenStore(ctx, o.Store); err != nil {
			return err
		}
	}
	defer reg.Close()
	reg.VerifyAllDigests = o.VerifyAllDigests
	if o.VerifyExisting {
		n, err := reg.VerifyExisting(ctx, func(t store.TagRef, err error) {
			if err != nil {
				log.Warn("tag stays hidden: its tree does not verify", "tag", fmt.Sprintf("%s/%s:%s", t.User, t.Repo, t.Tag), "err", err)
			}
		})
		if err != nil {
			return fmt.Errorf("verifying existing tags: %w", err)
		}
		log.Info("verified existing tags", "made_visible", n)
	}
	cfg.Registry, cfg.Tokens, cfg.Logger, cfg.MaxUploadSize = reg, tokens, log, o.MaxUploadSize
	cfg.RequireAttestedHardware = o.RequireAttestedHardware
	h, err := New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", o.Addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		// HTTP/1.1 only, as upstream: large bodies stream markedly faster
		// than through HTTP/2's framing and flow control, and a registry
		// gains little from multiplexing.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		// Large nodes leave in batches of TLS records (sendObject).
		ConnContext: ConnContext,
	}
	tlsConf.NextProtos = []string{"http/1.1"}
	if writeDevToken != nil {
		if err := writeDevToken(); err != nil {
			ln.Close()
			return fmt.Errorf("dev mode: writing the token: %w", err)
		}
	}
	log.Info("listening", "addr", ln.Addr().String(), "store", o.Store, "dev", o.Dev)
	if o.Ready != nil {
		o.Ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(Listener(ln), "", "") }()
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
