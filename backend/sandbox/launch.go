package sandbox

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"time"

	"golang.org/x/crypto/x509roots/fallback/bundle"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/config"
	"github.com/enarx-go/enarx/identity"
	"github.com/enarx-go/enarx/keep"
)

// The launch description (backend.Launch) crosses into the Keep process
// in one shape, the launch message (wire.go): newLaunch builds it on the
// host, keepArgs turns it back into keep.Run's arguments in the Keep.
// Nothing else reshapes a launch on the way.

// newLaunch is the launch message for l. The host adds
// what it learns while the Keep starts (CacheDir, PayloadFD, CloneFlags);
// seal fills in the payload lengths and digests.
func newLaunch(ctx context.Context, l *backend.Launch) *launch {
	// Null entries get no fd (the Keep learns which from Null), so the
	// passed fds stay dense.
	var null []int
	var dirs []launchDir
	for i, f := range l.Files {
		if f == nil {
			null = append(null, i)
			continue
		}
		if l.Config != nil && i < len(l.Config.Files) && l.Config.Files[i].Kind == config.KindDir {
			if o := l.Config.Files[i].Dir; o != nil {
				dirs = append(dirs, launchDir{Index: i, ReadOnly: o.ReadOnly, Path: o.HostPath})
			}
		}
	}
	return &launch{
		HasConfig:        l.Workload.Config != nil,
		ConfigName:       l.Workload.ConfigName,
		Package:          l.Workload.Package,
		Args:             l.Options.Args,
		Env:              l.Options.Env,
		NFiles:           len(l.Files),
		Null:             null,
		Dirs:             dirs,
		MemoryLimit:      l.Options.MemoryLimit,
		Engine:           l.Options.Engine,
		LogLevel:         logLevel(ctx, l.Options.Logger),
		RequireIsolation: l.Policy.RequireIsolation,
		Broker:           l.StewardAddr() != "",
		GoMaxProcs:       runtime.GOMAXPROCS(0),
		wasm:             l.Workload.Wasm,
		config:           l.Workload.Config,
		bundle:           l.Workload.Bundle,
		volumeKeys:       l.Options.VolumeKeys,
	}
}

// keepArgs is newLaunch's inverse, in the Keep process: the workload and
// options keep.Run gets. files are the host's descriptors, index-aligned
// with [[files]]; dial, if set, reaches the Steward through the host's
// dial broker; cacheDir is the module's compilation cache ("" = none).
func (l *launch) keepArgs(files []*os.File, dial func(context.Context) (net.Conn, error), cacheDir string, logger *slog.Logger) (keep.Workload, keep.Options) {
	var establish func(context.Context, identity.Request) (*identity.Identity, error)
	if dial != nil {
		establish = func(ctx context.Context, req identity.Request) (*identity.Identity, error) {
			hc, err := stewardClient(req.StewardCA, dial)
			if err != nil {
				return nil, err
			}
			req.HTTPClient, req.StewardCA = hc, ""
			return identity.Establish(ctx, req)
		}
	}
	return keep.Workload{
			Wasm: l.wasm, Config: l.config, ConfigName: l.ConfigName, Package: l.Package, Bundle: l.bundle,
		}, keep.Options{
			Files:       files,
			Args:        l.Args,
			Env:         l.Env,
			VolumeKeys:  l.volumeKeys,
			Logger:      logger,
			CacheDir:    cacheDir,
			NoCache:     cacheDir == "",
			Identity:    establish,
			MemoryLimit: l.MemoryLimit,
			Engine:      l.Engine,
			// keep.Run checks the module against the host's digest.
			WasmSHA256: l.WasmSHA256,
			// The host kills this process on --timeout and interrupt:
			// the engine needs no epoch checks in the guest's loops.
			Killed: true,
		}
}

// The descriptors the host passes the Keep, from controlFD on: the control
// socket, one per non-null [[files]] entry, the dial broker (Broker), the
// payload memfd (PayloadFD) and, last, the executable.

// fileFD is the descriptor of [[files]] entry i, which must not be null.
func (l *launch) fileFD(i int) int {
	fd := controlFD + 1 + i
	for _, n := range l.Null {
		if n < i {
			fd--
		}
	}
	return fd
}

// brokerFD is the dial broker's descriptor, if Broker.
func (l *launch) brokerFD() int { return controlFD + 1 + l.NFiles - len(l.Null) }

// payloadFD is the payload memfd's descriptor, if PayloadFD.
func (l *launch) payloadFD() int {
	if l.Broker {
		return l.brokerFD() + 1
	}
	return l.brokerFD()
}

// exeFD is the executable's descriptor.
func (l *launch) exeFD() int {
	if l.PayloadFD {
		return l.payloadFD() + 1
	}
	return l.payloadFD()
}

// logLevel finds the most verbose level logger accepts, so the Keep logs
// at the same level.
func logLevel(ctx context.Context, l *slog.Logger) string {
	if l == nil {
		return "error"
	}
	for _, lv := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn} {
		if l.Enabled(ctx, lv) {
			return lv.String()
		}
	}
	return "error"
}

// stewardClient is the Keep's HTTP client for the Steward: every connection
// comes from dial (the host's broker), TLS is verified against caPEM or,
// without it, the Mozilla roots compiled into the binary (as the identity
// package does), and no proxy or redirect is followed.
func stewardClient(caPEM string, dial func(context.Context) (net.Conn, error)) (*http.Client, error) {
	roots := x509.NewCertPool()
	if caPEM != "" {
		if !roots.AppendCertsFromPEM([]byte(caPEM)) {
			return nil, errors.New("keep identity: steward_ca holds no usable PEM certificate")
		}
	} else {
		for r := range bundle.Roots() {
			c, err := x509.ParseCertificate(r.Certificate)
			if err != nil {
				continue
			}
			if r.Constraint != nil {
				roots.AddCertWithConstraint(c, r.Constraint)
			} else {
				roots.AddCert(c)
			}
		}
	}
	tr := &http.Transport{
		DialContext:         func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots},
		TLSHandshakeTimeout: 30 * time.Second,
		MaxIdleConns:        1,
	}
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}, nil
}
