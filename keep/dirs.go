package keep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/config"
	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/hostfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/memfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/sealed"
)

// dirs is what opening the config's kind = "dir" entries needs beyond
// each entry and its host directory.
type dirs struct {
	// keys are Options.VolumeKeys: host-supplied volume keys by key spec.
	keys map[string][]byte
	// wasmSum is the module's SHA-256, which names the workload in keys
	// derived inside the Keep, so that another workload in the same Keep
	// version does not derive the same volume key.
	wasmSum [32]byte
	log     *slog.Logger

	mu sync.Mutex
	// volumes are the sealed volumes opened, closed by close.
	volumes []*sealed.Volume
	// ilog is integrityLog's logger.
	ilog *slog.Logger
}

// openDir opens dir entry f as a preopen: a memory tree in the Keep, or
// the host directory hf (host, sealed) wrapped by its source. The fd is
// the entry's index and its name in FD_NAMES is f.Name, like every
// entry's; the workload sees the preopen as f.Dir.GuestPath. hf is not
// closed (the source works on its own descriptor).
func openDir(ctx context.Context, f config.File, hf *os.File, d *dirs) (fd.File, error) {
	o := f.Dir
	if o == nil {
		return nil, errors.New("dir entry without its fields (config not parsed by config.Parse)")
	}
	var dir vfs.Dir
	var err error
	switch o.Source {
	case config.SourceMemory:
		if hf != nil {
			return nil, errors.New("the host passed a file for a memory directory, which lives in the Keep")
		}
		if o.Size > config.MaxDirSize {
			return nil, fmt.Errorf("memory directory size %d is above the maximum %d", o.Size, uint64(config.MaxDirSize))
		}
		dir, err = memfs.New(int64(o.Size), o.ReadOnly)
	case config.SourceHost:
		var own *os.File
		if own, err = hostDir(hf); err != nil {
			return nil, err
		}
		dir, err = hostfs.New(own, o.ReadOnly)
	case config.SourceSealed:
		var own *os.File
		if own, err = hostDir(hf); err != nil {
			return nil, err
		}
		dir, err = openSealed(ctx, f, own, d)
	default:
		return nil, fmt.Errorf("unknown directory source %q", o.Source)
	}
	if err != nil {
		return nil, err
	}
	return &vfs.Preopen{Dir: dir, Name: o.GuestPath}, nil
}

// hostDir checks that the host passed a directory (the host is untrusted:
// a file or a socket where a directory belongs is an error) and returns
// a descriptor of it of the Keep's own, which the source takes over.
func hostDir(hf *os.File) (*os.File, error) {
	if hf == nil {
		return nil, errors.New("the host passed no directory")
	}
	rc, err := hf.SyscallConn()
	if err != nil {
		return nil, err
	}
	var own int
	var derr error
	if err := rc.Control(func(x uintptr) {
		var st unix.Stat_t
		if derr = unix.Fstat(int(x), &st); derr != nil {
			return
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			derr = fmt.Errorf("the host passed something other than a directory (mode %#o)", st.Mode&unix.S_IFMT)
			return
		}
		own, derr = unix.FcntlInt(x, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, derr
	}
	return os.NewFile(uintptr(own), hf.Name()), nil
}
