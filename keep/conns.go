package keep

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/enarx-go/enarx/config"
	"github.com/enarx-go/enarx/keep/internal/fd"
)

// Conns supplies the Keep's side of each [[files]] entry when the host
// reaches the Keep through a channel (a microVM Keep) instead of passing
// descriptors. What it returns comes from the untrusted host, as host
// descriptors do; TLS still terminates here.
type Conns interface {
	// Conn returns the stream of stdin, stdout, stderr or connect entry i,
	// and, for stdio, the filetype of the host's side.
	Conn(ctx context.Context, i int) (fd.Conn, fd.Filetype, error)
	// Acceptor returns the connections of listen entry i.
	Acceptor(i int) (fd.Acceptor, error)
}

// What an implementation of Conns hands the Keep (the microVM Keep's guest
// side implements Conns over its channel to the host).
type (
	// Conn is the stream of a [[files]] entry: a net.Conn that can also
	// read and write without waiting and say when it could.
	Conn = fd.Conn
	// Acceptor is the Keep's side of a listen entry whose connections
	// are Conns.
	Acceptor = fd.Acceptor
	// Filetype is a WASI filetype: what the workload's fd_fdstat_get
	// reports for a stdio entry.
	Filetype = fd.Filetype
)

// MaxFDs bounds the workload's descriptor table, and so the index of any
// entry a Conns is asked for.
const MaxFDs = fd.MaxFDs

// ErrWouldBlock is what the non-blocking operations of a Conn or an
// Acceptor return when they cannot make progress now.
var ErrWouldBlock = fd.ErrWouldBlock

// FiletypeOf is the WASI filetype of host file f, as the workload sees a
// stdio entry that reaches the Keep as a descriptor; a host that carries
// stdio as streams sends it along for Conns.Conn to return.
func FiletypeOf(f *os.File) Filetype { return fd.FiletypeOf(f) }

// buildConnTable is buildTable for channel entries.
func buildConnTable(ctx context.Context, cfg *config.Config, conns Conns, id tlsConfigs, ds *dirs, log *slog.Logger, goGuest bool) (_ *fd.Table, err error) {
	out := make([]fd.File, 0, len(cfg.Files))
	defer func() {
		if err != nil {
			for _, f := range out {
				f.Close()
			}
		}
	}()
	for i, f := range cfg.Files {
		file, err := openConnEntry(ctx, i, f, conns, id, ds, log)
		if err != nil {
			return nil, fmt.Errorf("fd %d (%s %q): %w", i, f.Kind, f.Name, err)
		}
		out = append(out, file)
	}
	return newTable(cfg, out, goGuest), nil
}

func openConnEntry(ctx context.Context, i int, f config.File, conns Conns, id tlsConfigs, ds *dirs, log *slog.Logger) (fd.File, error) {
	switch f.Kind {
	case config.KindNull:
		return fd.Null{}, nil
	case config.KindDir:
		if f.Dir != nil && f.Dir.Source != config.SourceMemory {
			// The host serves the directory over a stream (remotedir.go).
			return openRemoteDir(ctx, i, f, conns, ds)
		}
		return openDir(ctx, f, nil, ds)
	case config.KindStdin, config.KindStdout, config.KindStderr:
		c, ft, err := conns.Conn(ctx, i)
		if err != nil {
			return nil, err
		}
		return fd.NewConnStdio(c, f.Kind != config.KindStdin, ft)
	case config.KindListen:
		a, err := conns.Acceptor(i)
		if err != nil {
			return nil, err
		}
		var tc *tls.Config
		if f.Prot == config.ProtTLS {
			if tc, err = id.ServerTLS(f); err != nil {
				a.Close()
				return nil, err
			}
		}
		l, err := fd.NewConnListener(ctx, a, tc)
		if err != nil {
			return nil, err
		}
		name := f.Name
		l.OnHandshakeError = func(remote net.Addr, err error) {
			log.Debug("TLS handshake failed; the connection is dropped, the workload never sees it", "listener", name, "peer", remote.String(), "error", err)
		}
		return l, nil
	case config.KindConnect:
		c, _, err := conns.Conn(ctx, i)
		if err != nil {
			return nil, err
		}
		if f.Prot != config.ProtTLS {
			return fd.NewConnSocket(c)
		}
		cfg, err := id.ClientTLS(f)
		if err != nil {
			c.Close()
			return nil, err
		}
		return fd.NewConnTLSClient(ctx, c, cfg)
	}
	return nil, fmt.Errorf("unknown kind %q", f.Kind)
}
