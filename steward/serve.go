package steward

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/enarx-go/enarx/internal/connlimit"
)

// Timeouts and limits of the HTTP server that Serve runs.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 30 * time.Second
	WriteTimeout      = 60 * time.Second
	IdleTimeout       = 120 * time.Second
	MaxHeaderBytes    = 32 << 10
	// ShutdownTimeout bounds how long Serve waits for in-flight requests
	// after its context is cancelled.
	ShutdownTimeout = 15 * time.Second
)

// Serve serves s on ln until ctx is cancelled, then shuts down gracefully:
// it stops accepting, lets in-flight requests finish (up to
// ShutdownTimeout) and returns nil. With tlsConfig non-nil it serves HTTPS
// (TLS 1.2 at least). It holds at most Config.MaxConns connections open,
// Config.MaxConnsPerIP from one address.
// It closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener, tlsConfig *tls.Config) error {
	limited := connlimit.New(ln, s.conns, s.log)
	ln = limited
	hs := &http.Server{
		ConnState:         limited.ConnState,
		Handler:           s,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if tlsConfig != nil {
		c := tlsConfig.Clone()
		if c.MinVersion < tls.VersionTLS12 {
			c.MinVersion = tls.VersionTLS12
		}
		ln = tls.NewListener(ln, c)
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	s.log.Info("steward: serving", "addr", ln.Addr().String(), "tls", tlsConfig != nil, "debug", s.debug)

	select {
	case err := <-errc:
		return fmt.Errorf("steward: serving on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	s.log.Info("steward: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	err := hs.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("steward: shutdown: %w", err)
	}
	return nil
}
