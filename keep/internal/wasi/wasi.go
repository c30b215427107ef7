// Package wasi is the Keep's WASI preview1 host module, written for the
// Enarx fd model (fd = index of the Enarx.toml [[files]] entry; stdio, null,
// listening and connected TCP/TLS sockets, and preopened directories whose
// files and subdirectories come from package vfs). It is written once,
// against the engine-neutral engine.HostFunc and engine.Caller, and runs
// unchanged on every engine of package engine.
//
// The engines' bundled WASI implementations cannot express that model
// (connected sockets at arbitrary fd numbers, TLS streams, null, file
// systems held in Keep memory or sealed inside the Keep), hence this layer.
//
// Trust: the guest module is untrusted. Every pointer and length it passes is
// bounds-checked against its linear memory (EFAULT), counts are bounded
// (EINVAL), result pointers are checked before any I/O or change to a file
// system so a bad pointer never loses data, descriptors are looked up in the
// fd table (EBADF), flags are validated (EINVAL), and rights are checked
// where a descriptor's rights were limited (ENOTCAPABLE). Paths are checked
// here (no NUL, valid UTF-8, at most vfs.MaxPath bytes) and resolved beneath
// their directory by the vfs source, which is trusted to keep them there.
// No call panics and none blocks unless the guest asked to; proc_exit, a
// cancelled wait and a long random_get of a cancelled run unwind the guest
// by returning an error to the engine.
package wasi

import (
	"context"
	"crypto/rand"
	"io"
	"strings"
	"time"

	"github.com/enarx-go/enarx/keep/internal/engine"
	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// Module names under which the functions are exported: preview1 and the
// legacy name upstream also links, preview 0, whose few differing layouts
// are adapted (legacy.go).
const (
	ModuleName       = "wasi_snapshot_preview1"
	LegacyModuleName = "wasi_unstable"
)

// Limits on guest-supplied counts.
const (
	// MaxIovecs bounds iovec arrays (Linux IOV_MAX).
	MaxIovecs = 1024
	// MaxSubscriptions bounds poll_oneoff subscriptions.
	MaxSubscriptions = 2*fd.MaxFDs + 64
)

// System is the state behind one module instance's WASI imports.
type System struct {
	// Args is argv (argv[0] included).
	Args []string
	// Env is the environment as "NAME=value" strings.
	Env []string
	// Files is the descriptor table.
	Files *fd.Table
	// Rand is the random_get source (default crypto/rand).
	Rand io.Reader

	start  time.Time
	argBuf []byte
	envBuf []byte

	// unwind is set by a call that must end the guest (a cancelled
	// poll_oneoff); the engine unwinds with it.
	unwind error

	// iovs is the copy of the current call's iovec array (iovecs).
	iovs []byte

	// poll_oneoff scratch space (subs0: wasi_unstable's subscriptions,
	// converted).
	subs   []sub
	subs0  []byte
	ready  []pending
	pfds   []unix.PollFd
	pindex []int
}

// HostFuncs readies s and returns its WASI functions under both module
// names, for any engine (see package engine).
func (s *System) HostFuncs() []engine.HostFunc {
	if s.Rand == nil {
		s.Rand = rand.Reader
	}
	s.start = time.Now()
	s.argBuf = nulJoin(s.Args)
	s.envBuf = nulJoin(s.Env)
	var out []engine.HostFunc
	for _, mod := range []string{ModuleName, LegacyModuleName} {
		exports := s.exports()
		if mod == LegacyModuleName {
			exports = s.legacyExports()
		}
		for _, e := range exports {
			fn := e.fn
			out = append(out, engine.HostFunc{
				Module: mod, Name: e.name, Params: e.params, Results: errnoResult,
				Fn: func(ctx context.Context, c engine.Caller, stack []uint64) error {
					stack[0] = uint64(fn(ctx, c, stack))
					if err := s.unwind; err != nil {
						s.unwind = nil
						return err
					}
					return nil
				},
			})
		}
		out = append(out, engine.HostFunc{Module: mod, Name: "proc_exit", Params: []engine.ValType{i32}, Fn: procExit})
	}
	return out
}

func nulJoin(list []string) []byte {
	var b []byte
	for _, s := range list {
		b = append(b, s...)
		b = append(b, 0)
	}
	return b
}

const (
	i32 = engine.I32
	i64 = engine.I64
)

// hostFunc is one WASI function: it returns the errno.
type hostFunc func(ctx context.Context, c engine.Caller, stack []uint64) Errno

type export struct {
	name   string
	fn     hostFunc
	params []engine.ValType
	names  []string
}

func (s *System) exports() []export {
	return []export{
		{"args_get", s.argsGet, []engine.ValType{i32, i32}, []string{"argv", "argv_buf"}},
		{"args_sizes_get", s.argsSizesGet, []engine.ValType{i32, i32}, []string{"result.argc", "result.argv_len"}},
		{"environ_get", s.environGet, []engine.ValType{i32, i32}, []string{"environ", "environ_buf"}},
		{"environ_sizes_get", s.environSizesGet, []engine.ValType{i32, i32}, []string{"result.environc", "result.environv_len"}},
		{"clock_res_get", s.clockResGet, []engine.ValType{i32, i32}, []string{"id", "result.resolution"}},
		{"clock_time_get", s.clockTimeGet, []engine.ValType{i32, i64, i32}, []string{"id", "precision", "result.timestamp"}},
		{"fd_advise", s.fdAdvise, []engine.ValType{i32, i64, i64, i32}, []string{"fd", "offset", "len", "advice"}},
		{"fd_allocate", s.fdAllocate, []engine.ValType{i32, i64, i64}, []string{"fd", "offset", "len"}},
		{"fd_close", s.fdClose, []engine.ValType{i32}, []string{"fd"}},
		{"fd_datasync", s.fdDatasync, []engine.ValType{i32}, []string{"fd"}},
		{"fd_fdstat_get", s.fdFdstatGet, []engine.ValType{i32, i32}, []string{"fd", "result.stat"}},
		{"fd_fdstat_set_flags", s.fdFdstatSetFlags, []engine.ValType{i32, i32}, []string{"fd", "flags"}},
		{"fd_fdstat_set_rights", s.fdFdstatSetRights, []engine.ValType{i32, i64, i64}, []string{"fd", "fs_rights_base", "fs_rights_inheriting"}},
		{"fd_filestat_get", s.fdFilestatGet, []engine.ValType{i32, i32}, []string{"fd", "result.filestat"}},
		{"fd_filestat_set_size", s.fdFilestatSetSize, []engine.ValType{i32, i64}, []string{"fd", "size"}},
		{"fd_filestat_set_times", s.fdFilestatSetTimes, []engine.ValType{i32, i64, i64, i32}, []string{"fd", "atim", "mtim", "fst_flags"}},
		{"fd_pread", s.fdPread, []engine.ValType{i32, i32, i32, i64, i32}, []string{"fd", "iovs", "iovs_len", "offset", "result.nread"}},
		{"fd_prestat_get", s.fdPrestatGet, []engine.ValType{i32, i32}, []string{"fd", "result.prestat"}},
		{"fd_prestat_dir_name", s.fdPrestatDirName, []engine.ValType{i32, i32, i32}, []string{"fd", "result.path", "result.path_len"}},
		{"fd_pwrite", s.fdPwrite, []engine.ValType{i32, i32, i32, i64, i32}, []string{"fd", "iovs", "iovs_len", "offset", "result.nwritten"}},
		{"fd_read", s.fdRead, []engine.ValType{i32, i32, i32, i32}, []string{"fd", "iovs", "iovs_len", "result.nread"}},
		{"fd_readdir", s.fdReaddir, []engine.ValType{i32, i32, i32, i64, i32}, []string{"fd", "buf", "buf_len", "cookie", "result.bufused"}},
		{"fd_renumber", s.fdRenumber, []engine.ValType{i32, i32}, []string{"fd", "to"}},
		{"fd_seek", s.fdSeek, []engine.ValType{i32, i64, i32, i32}, []string{"fd", "offset", "whence", "result.newoffset"}},
		{"fd_sync", s.fdSync, []engine.ValType{i32}, []string{"fd"}},
		{"fd_tell", s.fdTell, []engine.ValType{i32, i32}, []string{"fd", "result.offset"}},
		{"fd_write", s.fdWrite, []engine.ValType{i32, i32, i32, i32}, []string{"fd", "iovs", "iovs_len", "result.nwritten"}},
		{"path_create_directory", s.pathOp(fd.RightPathCreateDirectory, vfs.Dir.Mkdir), []engine.ValType{i32, i32, i32}, []string{"fd", "path", "path_len"}},
		{"path_filestat_get", s.pathFilestatGet, []engine.ValType{i32, i32, i32, i32, i32}, []string{"fd", "flags", "path", "path_len", "result.filestat"}},
		{"path_filestat_set_times", s.pathFilestatSetTimes, []engine.ValType{i32, i32, i32, i32, i64, i64, i32}, []string{"fd", "flags", "path", "path_len", "atim", "mtim", "fst_flags"}},
		{"path_link", s.pathLink, []engine.ValType{i32, i32, i32, i32, i32, i32, i32}, []string{"old_fd", "old_flags", "old_path", "old_path_len", "new_fd", "new_path", "new_path_len"}},
		{"path_open", s.pathOpen, []engine.ValType{i32, i32, i32, i32, i32, i64, i64, i32, i32}, []string{"fd", "dirflags", "path", "path_len", "oflags", "fs_rights_base", "fs_rights_inheriting", "fdflags", "result.opened_fd"}},
		{"path_readlink", s.pathReadlink, []engine.ValType{i32, i32, i32, i32, i32, i32}, []string{"fd", "path", "path_len", "buf", "buf_len", "result.bufused"}},
		{"path_remove_directory", s.pathOp(fd.RightPathRemoveDirectory, vfs.Dir.Rmdir), []engine.ValType{i32, i32, i32}, []string{"fd", "path", "path_len"}},
		{"path_rename", s.pathRename, []engine.ValType{i32, i32, i32, i32, i32, i32}, []string{"fd", "old_path", "old_path_len", "new_fd", "new_path", "new_path_len"}},
		{"path_symlink", s.pathSymlink, []engine.ValType{i32, i32, i32, i32, i32}, []string{"old_path", "old_path_len", "fd", "new_path", "new_path_len"}},
		{"path_unlink_file", s.pathOp(fd.RightPathUnlinkFile, vfs.Dir.Unlink), []engine.ValType{i32, i32, i32}, []string{"fd", "path", "path_len"}},
		{"poll_oneoff", s.pollOneoff, []engine.ValType{i32, i32, i32, i32}, []string{"in", "out", "nsubscriptions", "result.nevents"}},
		{"proc_raise", s.procRaise, []engine.ValType{i32}, []string{"sig"}},
		{"sched_yield", s.schedYield, nil, nil},
		{"random_get", s.randomGet, []engine.ValType{i32, i32}, []string{"buf", "buf_len"}},
		{"sock_accept", s.sockAccept, []engine.ValType{i32, i32, i32}, []string{"fd", "flags", "result.fd"}},
		{"sock_recv", s.sockRecv, []engine.ValType{i32, i32, i32, i32, i32, i32}, []string{"fd", "ri_data", "ri_data_len", "ri_flags", "result.ro_datalen", "result.ro_flags"}},
		{"sock_send", s.sockSend, []engine.ValType{i32, i32, i32, i32, i32}, []string{"fd", "si_data", "si_data_len", "si_flags", "result.so_datalen"}},
		{"sock_shutdown", s.sockShutdown, []engine.ValType{i32, i32}, []string{"fd", "how"}},
	}
}

// FunctionNames lists every exported function (proc_exit included).
func FunctionNames() []string {
	var s System
	names := []string{"proc_exit"}
	for _, e := range s.exports() {
		names = append(names, e.name)
	}
	return names
}

var errnoResult = []engine.ValType{i32}

// Call invokes the named function directly with params, as if the guest
// c had called it (used by tests and fuzzing); a name prefixed with
// LegacyModuleName and a dot is that module's function. It returns the
// errno and the error with which the call would unwind the guest (nil
// normally).
func (s *System) Call(ctx context.Context, c engine.Caller, name string, params ...uint64) (Errno, error, bool) {
	exports := s.exports()
	if fn, ok := strings.CutPrefix(name, LegacyModuleName+"."); ok {
		exports, name = s.legacyExports(), fn
	}
	for _, e := range exports {
		if e.name == name {
			stack := make([]uint64, max(len(params), 1))
			copy(stack, params)
			errno := e.fn(ctx, c, stack)
			err := s.unwind
			s.unwind = nil
			return errno, err, true
		}
	}
	return 0, nil, false
}
