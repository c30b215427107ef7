package keep

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/enarx-go/enarx/config"
	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/hostfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/remote"
)

// DirStreams is implemented by a Conns whose host serves the host
// directories of [[files]] entries of kind "dir" (sources "host" and
// "sealed") over streams, for a Keep that has no host file system (the
// microVM Keep). The host serves each with ServeDir; the Keep's side of
// the protocol (keep/internal/vfs/remote) treats every reply as hostile.
type DirStreams interface {
	// DirStream returns the stream of dir entry i.
	DirStream(ctx context.Context, i int) (io.ReadWriteCloser, error)
}

// ServeDir is the host's side of a DirStreams stream: it serves the host
// directory dir (the descriptor hostio opened for a dir entry, which it
// does not close) on rw until rw ends, through the host source, which
// resolves every path the Keep sends beneath dir (openat2
// RESOLVE_BENEATH): the Keep cannot reach anything on the host outside
// it. With readOnly the source refuses every change. It returns an error
// when the Keep broke the protocol (the stream should then be reset).
func ServeDir(dir *os.File, readOnly bool, rw io.ReadWriter) error {
	own, err := hostDir(dir)
	if err != nil {
		return err
	}
	root, err := hostfs.New(own, readOnly)
	if err != nil {
		return err
	}
	defer root.Close()
	return remote.Serve(rw, root)
}

// openRemoteDir opens dir entry f (source host or sealed) of a channel
// Keep over its stream from conns.
func openRemoteDir(ctx context.Context, i int, f config.File, conns Conns, d *dirs) (fd.File, error) {
	ds, ok := conns.(DirStreams)
	if !ok {
		return nil, fmt.Errorf("source = %q directories are not available in this Keep (its host passes no directory streams); use source = \"memory\"", f.Dir.Source)
	}
	rw, err := ds.DirStream(ctx, i)
	if err != nil {
		return nil, err
	}
	dir, err := remote.Dial(rw, f.Dir.ReadOnly)
	if err != nil {
		return nil, err
	}
	switch f.Dir.Source {
	case config.SourceHost:
		return &vfs.Preopen{Dir: dir, Name: f.Dir.GuestPath}, nil
	case config.SourceSealed:
		root, err := openSealedOn(ctx, f, dir, d)
		if err != nil {
			return nil, err
		}
		return &vfs.Preopen{Dir: root, Name: f.Dir.GuestPath}, nil
	}
	dir.Close()
	return nil, errors.New("unknown directory source")
}
