package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/enarx-go/enarx/keep"
)

// checkCacheRoot refuses a compilation cache root (--cache-dir, else the
// user's cache directory) that another user may write to: it holds
// machine code that the nil backend and the other in-process backends run
// in this process, and the sandbox and microVM Keeps' caches beneath it,
// checked against corruption only (whoever writes an entry can write its
// checksum). Only a root that already exists is checked: the engines
// create a missing one with mode 0700. A symbolic link is judged by the
// directory it names.
func checkCacheRoot(o keep.Options) error {
	if o.NoCache {
		return nil
	}
	dir := o.CacheDir
	if dir == "" {
		var err error
		if dir, err = keep.DefaultCacheDir(); err != nil {
			return err
		}
	}
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking the compilation cache %s: %w (or use --no-cache)", dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("the compilation cache %s is not a directory: use --cache-dir with a directory of your own, or --no-cache", dir)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() && sys.Uid != 0 {
		return fmt.Errorf("the compilation cache %s belongs to user id %d, not to you: the machine code in it would run as yours; use --cache-dir with a directory of your own, or --no-cache", dir, sys.Uid)
	}
	if st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("the compilation cache %s may be written by other users (mode %04o): the machine code in it would run as yours; run `chmod go-w %s`, or use --no-cache", dir, st.Mode().Perm(), dir)
	}
	return nil
}
