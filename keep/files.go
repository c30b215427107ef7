package keep

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/config"
	"github.com/enarx-go/enarx/keep/internal/fd"
)

// tlsConfigs supplies TLS configurations for prot = "tls" entries (the Keep
// identity implements it).
type tlsConfigs interface {
	ServerTLS(config.File) (*tls.Config, error)
	ClientTLS(config.File) (*tls.Config, error)
}

// buildTable checks that each host file is the kind of object cfg says
// (the host is untrusted: a file where a listening socket belongs is an
// error, not a surprise later) and wraps it as fd i.
//
// Sockets start blocking, as upstream, except for Go guests: Go's runtime
// only multiplexes goroutines over non-blocking descriptors (it switches
// its own stdio to non-blocking at start-up), and a Go server written the
// usual way, net.FileListener(os.NewFile(3, "")) with a goroutine per
// connection, would otherwise stall in a blocking sock_accept.
func buildTable(ctx context.Context, cfg *config.Config, files []*os.File, id tlsConfigs, ds *dirs, log *slog.Logger, goGuest bool) (_ *fd.Table, err error) {
	if len(files) != len(cfg.Files) {
		return nil, fmt.Errorf("the host passed %d files for %d [[files]] entries", len(files), len(cfg.Files))
	}
	out := make([]fd.File, 0, len(cfg.Files))
	defer func() {
		if err != nil {
			for _, f := range out {
				f.Close()
			}
		}
	}()
	for i, f := range cfg.Files {
		file, err := openEntry(ctx, f, files[i], id, ds, log)
		if err != nil {
			return nil, fmt.Errorf("fd %d (%s %q): %w", i, f.Kind, f.Name, err)
		}
		out = append(out, file)
	}
	return newTable(cfg, out, goGuest), nil
}

// newTable makes the table and, for Go guests, starts sockets
// non-blocking (see buildTable).
func newTable(cfg *config.Config, out []fd.File, goGuest bool) *fd.Table {
	t := fd.NewTable(out)
	if goGuest {
		for i, f := range cfg.Files {
			if f.Kind == config.KindListen || f.Kind == config.KindConnect {
				e, _ := t.Get(uint32(i))
				e.Flags |= fd.FlagNonblock
			}
		}
	}
	return t
}

// isGoModule reports whether wasm was built by the Go toolchain, which
// puts a "go:buildid" custom section first.
func isGoModule(wasm []byte) bool {
	const name = "go:buildid"
	// header (8 bytes), section id 0, LEB128 size, LEB128 name length, name
	if len(wasm) < 8 || string(wasm[:8]) != "\x00asm\x01\x00\x00\x00" {
		return false
	}
	b := wasm[8:]
	if len(b) == 0 || b[0] != 0 {
		return false
	}
	b = b[1:]
	for i := 0; i < 5 && len(b) > 0; i++ { // skip the section size
		c := b[0]
		b = b[1:]
		if c < 0x80 {
			break
		}
	}
	return len(b) > len(name) && int(b[0]) == len(name) && string(b[1:1+len(name)]) == name
}

func openEntry(ctx context.Context, f config.File, hf *os.File, id tlsConfigs, ds *dirs, log *slog.Logger) (fd.File, error) {
	switch f.Kind {
	case config.KindNull:
		return fd.Null{}, nil
	case config.KindDir:
		return openDir(ctx, f, hf, ds)
	}
	if hf == nil {
		return nil, errors.New("the host passed no file")
	}
	switch f.Kind {
	case config.KindStdin, config.KindStdout, config.KindStderr:
		if kind, err := sockKind(hf); err == nil && kind == sockListening {
			return nil, errors.New("the host passed a listening socket where a stdio stream belongs")
		}
		return fd.NewStdio(hf, f.Kind != config.KindStdin)
	case config.KindListen:
		if kind, err := sockKind(hf); err != nil || kind != sockListening {
			return nil, fmt.Errorf("the host passed something other than a listening TCP socket (%v)", err)
		}
		ln, err := net.FileListener(hf)
		if err != nil {
			return nil, err
		}
		tl, ok := ln.(*net.TCPListener)
		if !ok {
			ln.Close()
			return nil, errors.New("the host passed a non-TCP listener")
		}
		var tc *tls.Config
		if f.Prot == config.ProtTLS {
			if tc, err = id.ServerTLS(f); err != nil {
				tl.Close()
				return nil, err
			}
		}
		l, err := fd.NewTCPListener(ctx, tl, tc)
		if err != nil {
			tl.Close()
			return nil, err
		}
		name := f.Name
		l.OnHandshakeError = func(remote net.Addr, err error) {
			log.Debug("TLS handshake failed; the connection is dropped, the workload never sees it", "listener", name, "peer", remote.String(), "error", err)
		}
		return l, nil
	case config.KindConnect:
		if kind, err := sockKind(hf); err != nil || kind != sockConnected {
			return nil, fmt.Errorf("the host passed something other than a connected TCP socket (%v)", err)
		}
		c, err := net.FileConn(hf)
		if err != nil {
			return nil, err
		}
		tc, ok := c.(*net.TCPConn)
		if !ok {
			c.Close()
			return nil, errors.New("the host passed a non-TCP connection")
		}
		if f.Prot != config.ProtTLS {
			return fd.NewTCPSocket(tc)
		}
		cfg, err := id.ClientTLS(f)
		if err != nil {
			tc.Close()
			return nil, err
		}
		return fd.NewTLSClient(ctx, tc, cfg)
	}
	return nil, fmt.Errorf("unknown kind %q", f.Kind)
}

type sockState int

const (
	sockListening sockState = iota + 1
	sockConnected
)

// sockKind classifies a host descriptor as a listening or connected
// TCP (IPv4/IPv6 stream) socket.
func sockKind(f *os.File) (sockState, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var st sockState
	var serr error
	err = rc.Control(func(x uintptr) {
		s := int(x)
		typ, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_TYPE)
		if err != nil {
			serr = fmt.Errorf("not a socket: %w", err)
			return
		}
		dom, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_DOMAIN)
		if err != nil || typ != unix.SOCK_STREAM || (dom != unix.AF_INET && dom != unix.AF_INET6) {
			serr = errors.New("not a TCP socket")
			return
		}
		acc, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		if err != nil {
			serr = err
			return
		}
		if acc == 1 {
			st = sockListening
			return
		}
		if _, err := unix.Getpeername(s); err != nil {
			serr = fmt.Errorf("socket is not connected: %w", err)
			return
		}
		st = sockConnected
	})
	if err != nil {
		return 0, err
	}
	return st, serr
}
