// Package hostio opens, on the untrusted host, the resources an Enarx.toml
// names: the process's stdio, bound TCP listeners and connected TCP
// streams. It returns them as plain *os.File descriptors, index-aligned
// with the config's [[files]], so that every backend hands the Keep the
// same narrow thing: in-process (nil backend) or across a process boundary
// (sandbox). Nothing here is trusted by the Keep, which re-checks each
// descriptor's kind and terminates TLS itself.
package hostio

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/enarx-go/enarx/config"
)

// DialTimeout bounds connecting a connect entry at start-up.
const DialTimeout = 30 * time.Second

// Open opens cfg's files on the host. Null entries get nil. On error
// everything opened so far is closed and the error names the entry and
// endpoint.
func Open(ctx context.Context, cfg *config.Config) (files []*os.File, err error) {
	files = make([]*os.File, len(cfg.Files))
	defer func() {
		if err != nil {
			Close(files)
			files = nil
		}
	}()
	for i, f := range cfg.Files {
		switch f.Kind {
		case config.KindNull:
		case config.KindStdin:
			files[i] = os.Stdin
		case config.KindStdout:
			files[i] = os.Stdout
		case config.KindStderr:
			files[i] = os.Stderr
		case config.KindListen:
			addr := net.JoinHostPort(f.Addr, strconv.Itoa(int(f.Port)))
			var lc net.ListenConfig
			l, err := lc.Listen(ctx, "tcp", addr)
			if err != nil {
				return nil, fmt.Errorf("fd %d (listen %q): cannot listen on %s: %w", i, f.Name, addr, err)
			}
			files[i], err = l.(*net.TCPListener).File()
			l.Close()
			if err != nil {
				return nil, fmt.Errorf("fd %d (listen %q) on %s: %w", i, f.Name, addr, err)
			}
		case config.KindConnect:
			host := f.Host
			if host == "" {
				// Enarx.toml allows it, as upstream; Go would dial the
				// local system for an empty host, upstream fails here.
				return nil, fmt.Errorf("fd %d (connect %q): failed to connect to endpoint: the host is empty; set files[%d].host in Enarx.toml", i, f.Name, i)
			}
			if host == "localhost" {
				// As upstream: avoid resolving localhost to ::1 first.
				host = "127.0.0.1"
			}
			addr := net.JoinHostPort(host, strconv.Itoa(int(f.Port)))
			d := net.Dialer{Timeout: DialTimeout}
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, fmt.Errorf("fd %d (connect %q): failed to connect to endpoint %s: %w", i, f.Name, addr, err)
			}
			files[i], err = c.(*net.TCPConn).File()
			c.Close()
			if err != nil {
				return nil, fmt.Errorf("fd %d (connect %q) to %s: %w", i, f.Name, addr, err)
			}
		default:
			return nil, fmt.Errorf("fd %d: unknown kind %q", i, f.Kind)
		}
	}
	return files, nil
}

// Close closes the files Open returned, except the process's own stdio.
func Close(files []*os.File) {
	for _, f := range files {
		if f == nil || f == os.Stdin || f == os.Stdout || f == os.Stderr {
			continue
		}
		f.Close()
	}
}

// IsStdio reports whether f is one of the process's stdio files (these are
// shared with the host process and must not be closed by a backend).
func IsStdio(f *os.File) bool {
	return f == os.Stdin || f == os.Stdout || f == os.Stderr
}
