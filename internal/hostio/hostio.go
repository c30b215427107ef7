// Package hostio opens, on the untrusted host, the resources an Enarx.toml
// names: the process's stdio, bound TCP listeners, connected TCP streams,
// the host directories of kind = "dir" entries, and the development key
// files of sealed ones (VolumeKeys). It returns them as plain *os.File descriptors, index-aligned
// with the config's [[files]], so that every backend hands the Keep the
// same narrow thing: in-process (nil backend) or across a process boundary
// (sandbox). Nothing here is trusted by the Keep, which re-checks each
// descriptor's kind and terminates TLS itself.
package hostio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/config"
)

// DialTimeout bounds connecting a connect entry at start-up.
const DialTimeout = 30 * time.Second

// Open opens cfg's files on the host. Null entries get nil, and so do dir
// entries of source "memory" (their tree lives in the Keep); host and
// sealed dir entries get their host_path opened as a directory
// (O_RDONLY|O_DIRECTORY|O_CLOEXEC: the Keep opens beneath it, never the
// directory itself for writing). A sealed entry's directory is locked
// (flock(2), non-blocking) so that no second Keep uses the volume at the
// same time (two would each remove the other's new objects and overwrite
// its manifest): exclusively when read-write, shared when read-only; the
// lock lasts until the returned file and every copy of it passed to the
// Keep are closed (Close, at the Keep's end). The lock guards an honest
// host against mistakes, nothing more: the host is not trusted. On error
// everything opened so far is closed and the error names the entry and
// endpoint.
func Open(ctx context.Context, cfg *config.Config) ([]*os.File, error) {
	files := make([]*os.File, len(cfg.Files))
	opened := false
	defer func() {
		// The error returns below return nil, not files: close files
		// itself.
		if !opened {
			Close(files)
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
		case config.KindDir:
			if f.Dir.Source == config.SourceMemory {
				continue
			}
			fd, err := unix.Open(f.Dir.HostPath, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				return nil, fmt.Errorf("fd %d (dir %q): opening host directory %s: %w; create it, or fix files[%d].host_path in Enarx.toml",
					i, f.Name, f.Dir.HostPath, err, i)
			}
			files[i] = os.NewFile(uintptr(fd), f.Dir.HostPath)
			if f.Dir.Source == config.SourceSealed {
				if err := lockVolume(fd, f.Dir.ReadOnly); err != nil {
					if errors.Is(err, unix.EWOULDBLOCK) {
						return nil, fmt.Errorf("fd %d (dir %q): sealed volume %q at %s is in use by another Keep (lock held); stop it or use another directory",
							i, f.Name, f.Name, f.Dir.HostPath)
					}
					return nil, fmt.Errorf("fd %d (dir %q): locking sealed volume %q at %s: %w; put the volume on a file system that supports flock(2)",
						i, f.Name, f.Name, f.Dir.HostPath, err)
				}
			}
		default:
			return nil, fmt.Errorf("fd %d: unknown kind %q", i, f.Kind)
		}
	}
	opened = true
	return files, nil
}

// lockVolume locks a sealed entry's host directory fd against other
// Keeps: exclusively for a read-write volume, shared for a read-only one
// (readers may run together, never beside a writer). The flock(2) lock
// belongs to the open file description, so it is held until every
// descriptor of it is closed: the one Open returns, and the copies the
// backend passes to the Keep.
func lockVolume(fd int, readOnly bool) error {
	how := unix.LOCK_EX
	if readOnly {
		how = unix.LOCK_SH
	}
	for {
		err := unix.Flock(fd, how|unix.LOCK_NB)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
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

// VolumeKeySize is the size of a volume key, and of a key file.
const VolumeKeySize = 32

// VolumeKeys does the host's part for cfg's host and sealed dir entries
// beyond opening their directories: it reads the key file each sealed
// entry's key = "file:/path" names (exactly VolumeKeySize bytes; a file
// that group or others may read is used with a warning), keyed by the
// entry's key spec as keep.Options.VolumeKeys wants them, and logs once
// that host directories are untrusted plaintext and once that file keys
// are for development only. It returns nil when no entry has a file key.
// Keys are never logged.
func VolumeKeys(cfg *config.Config, log *slog.Logger) (map[string][]byte, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var keys map[string][]byte
	var hostDirs, fileKeys []string
	for i, f := range cfg.Files {
		if f.Kind != config.KindDir {
			continue
		}
		switch f.Dir.Source {
		case config.SourceHost:
			hostDirs = append(hostDirs, f.Dir.HostPath)
		case config.SourceSealed:
			path, ok := strings.CutPrefix(f.Dir.Key, config.KeyFilePrefix)
			if !ok {
				continue
			}
			if _, done := keys[f.Dir.Key]; done {
				continue
			}
			k, err := readKeyFile(path, log)
			if err != nil {
				return nil, fmt.Errorf("fd %d (dir %q): volume key %s: %w", i, f.Name, f.Dir.Key, err)
			}
			if keys == nil {
				keys = map[string][]byte{}
			}
			keys[f.Dir.Key] = k
			fileKeys = append(fileKeys, f.Dir.Key)
		}
	}
	if len(hostDirs) > 0 {
		log.Warn("host directory: plaintext, untrusted: the host sees everything the workload writes there and may change anything in it", "host_paths", hostDirs)
	}
	if len(fileKeys) > 0 {
		log.Warn("sealed directory with a key file: development only, the host holds the key and can read and forge the volume", "keys", fileKeys)
	}
	return keys, nil
}

// readKeyFile reads a volume key file: a regular file of exactly
// VolumeKeySize bytes.
func readKeyFile(path string, log *slog.Logger) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w (make one with: head -c 32 /dev/urandom > %s; chmod 600 %s)", err, path, path)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		log.Warn("volume key file is readable by group or others; chmod 600 it", "path", path, "mode", st.Mode().Perm().String())
	}
	k := make([]byte, VolumeKeySize+1)
	n, err := io.ReadFull(f, k)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if n != VolumeKeySize {
		clear(k)
		if n > VolumeKeySize {
			return nil, fmt.Errorf("%s is longer than %d bytes; a volume key file holds exactly %d raw bytes", path, VolumeKeySize, VolumeKeySize)
		}
		return nil, fmt.Errorf("%s holds %d bytes; a volume key file holds exactly %d raw bytes", path, n, VolumeKeySize)
	}
	return k[:VolumeKeySize], nil
}
