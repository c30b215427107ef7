// Package wasi is the Keep's WASI preview1 host module, written for the
// Enarx fd model (fd = index of the Enarx.toml [[files]] entry; stdio, null,
// listening and connected TCP/TLS sockets; no file system) on wazero.
//
// wazero's bundled WASI cannot express that model (connected sockets at
// arbitrary fd numbers, TLS streams, null), hence this layer.
//
// Trust: the guest module is untrusted. Every pointer and length it passes is
// bounds-checked against its linear memory (EFAULT), counts are bounded
// (EINVAL), result pointers are checked before any I/O so a bad pointer
// never loses data, descriptors are looked up in the fd table (EBADF) and
// flags are validated (EINVAL). No call panics (except proc_exit, which
// unwinds the guest by design) and none blocks unless the guest asked to.
package wasi

import (
	"context"
	"crypto/rand"
	"io"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/keep/fd"
)

// Module names under which the functions are exported: preview1 and the
// legacy name upstream also links.
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

	// poll_oneoff scratch space.
	subs   []sub
	ready  []pending
	pfds   []unix.PollFd
	pindex []int
}

// Instantiate exports the WASI functions over s into r under both module
// names. The returned function releases s's resources (not the fd table).
func Instantiate(ctx context.Context, r wazero.Runtime, s *System) error {
	if s.Rand == nil {
		s.Rand = rand.Reader
	}
	s.start = time.Now()
	s.argBuf = nulJoin(s.Args)
	s.envBuf = nulJoin(s.Env)
	for _, name := range []string{ModuleName, LegacyModuleName} {
		b := r.NewHostModuleBuilder(name)
		s.export(b)
		if _, err := b.Instantiate(ctx); err != nil {
			return err
		}
	}
	return nil
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
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// hostFunc is one WASI function: it returns the errno.
type hostFunc func(ctx context.Context, mod api.Module, stack []uint64) Errno

type export struct {
	name   string
	fn     hostFunc
	params []api.ValueType
	names  []string
}

func (s *System) exports() []export {
	return []export{
		{"args_get", s.argsGet, []api.ValueType{i32, i32}, []string{"argv", "argv_buf"}},
		{"args_sizes_get", s.argsSizesGet, []api.ValueType{i32, i32}, []string{"result.argc", "result.argv_len"}},
		{"environ_get", s.environGet, []api.ValueType{i32, i32}, []string{"environ", "environ_buf"}},
		{"environ_sizes_get", s.environSizesGet, []api.ValueType{i32, i32}, []string{"result.environc", "result.environv_len"}},
		{"clock_res_get", s.clockResGet, []api.ValueType{i32, i32}, []string{"id", "result.resolution"}},
		{"clock_time_get", s.clockTimeGet, []api.ValueType{i32, i64, i32}, []string{"id", "precision", "result.timestamp"}},
		{"fd_advise", s.fdThen(0, ESPIPE), []api.ValueType{i32, i64, i64, i32}, []string{"fd", "offset", "len", "advice"}},
		{"fd_allocate", s.fdThen(0, ESPIPE), []api.ValueType{i32, i64, i64}, []string{"fd", "offset", "len"}},
		{"fd_close", s.fdClose, []api.ValueType{i32}, []string{"fd"}},
		{"fd_datasync", s.fdThen(0, EINVAL), []api.ValueType{i32}, []string{"fd"}},
		{"fd_fdstat_get", s.fdFdstatGet, []api.ValueType{i32, i32}, []string{"fd", "result.stat"}},
		{"fd_fdstat_set_flags", s.fdFdstatSetFlags, []api.ValueType{i32, i32}, []string{"fd", "flags"}},
		{"fd_fdstat_set_rights", s.fdFdstatSetRights, []api.ValueType{i32, i64, i64}, []string{"fd", "fs_rights_base", "fs_rights_inheriting"}},
		{"fd_filestat_get", s.fdFilestatGet, []api.ValueType{i32, i32}, []string{"fd", "result.filestat"}},
		{"fd_filestat_set_size", s.fdFilestatSetSize, []api.ValueType{i32, i64}, []string{"fd", "size"}},
		{"fd_filestat_set_times", s.fdFilestatSetTimes, []api.ValueType{i32, i64, i64, i32}, []string{"fd", "atim", "mtim", "fst_flags"}},
		{"fd_pread", s.fdThen(0, ESPIPE), []api.ValueType{i32, i32, i32, i64, i32}, []string{"fd", "iovs", "iovs_len", "offset", "result.nread"}},
		{"fd_prestat_get", s.fdPrestatGet, []api.ValueType{i32, i32}, []string{"fd", "result.prestat"}},
		{"fd_prestat_dir_name", s.fdPrestatGet, []api.ValueType{i32, i32, i32}, []string{"fd", "result.path", "result.path_len"}},
		{"fd_pwrite", s.fdThen(0, ESPIPE), []api.ValueType{i32, i32, i32, i64, i32}, []string{"fd", "iovs", "iovs_len", "offset", "result.nwritten"}},
		{"fd_read", s.fdRead, []api.ValueType{i32, i32, i32, i32}, []string{"fd", "iovs", "iovs_len", "result.nread"}},
		{"fd_readdir", s.fdThen(0, ENOTDIR), []api.ValueType{i32, i32, i32, i64, i32}, []string{"fd", "buf", "buf_len", "cookie", "result.bufused"}},
		{"fd_renumber", s.fdRenumber, []api.ValueType{i32, i32}, []string{"fd", "to"}},
		{"fd_seek", s.fdThen(0, ESPIPE), []api.ValueType{i32, i64, i32, i32}, []string{"fd", "offset", "whence", "result.newoffset"}},
		{"fd_sync", s.fdThen(0, EINVAL), []api.ValueType{i32}, []string{"fd"}},
		{"fd_tell", s.fdThen(0, ESPIPE), []api.ValueType{i32, i32}, []string{"fd", "result.offset"}},
		{"fd_write", s.fdWrite, []api.ValueType{i32, i32, i32, i32}, []string{"fd", "iovs", "iovs_len", "result.nwritten"}},
		{"path_create_directory", s.fdThen(0, ENOTDIR), []api.ValueType{i32, i32, i32}, []string{"fd", "path", "path_len"}},
		{"path_filestat_get", s.fdThen(0, ENOTDIR), []api.ValueType{i32, i32, i32, i32, i32}, []string{"fd", "flags", "path", "path_len", "result.filestat"}},
		{"path_filestat_set_times", s.fdThen(0, ENOTDIR), []api.ValueType{i32, i32, i32, i32, i64, i64, i32}, []string{"fd", "flags", "path", "path_len", "atim", "mtim", "fst_flags"}},
		{"path_link", s.fdThen(0, ENOTDIR), []api.ValueType{i32, i32, i32, i32, i32, i32, i32}, []string{"old_fd", "old_flags", "old_path", "old_path_len", "new_fd", "new_path", "new_path_len"}},
		{"path_open", s.fdThen(0, ENOTDIR), []api.ValueType{i32, i32, i32, i32, i32, i64, i64, i32, i32}, []string{"fd", "dirflags", "path", "path_len", "oflags", "fs_rights_base", "fs_rights_inheriting", "fdflags", "result.opened_fd"}},
		{"path_readlink", s.fdThen(0, ENOTDIR), []api.ValueType{i32, i32, i32, i32, i32, i32}, []string{"fd", "path", "path_len", "buf", "buf_len", "result.bufused"}},
		{"path_remove_directory", s.fdThen(0, ENOTDIR), []api.ValueType{i32, i32, i32}, []string{"fd", "path", "path_len"}},
		{"path_rename", s.fdThen(0, ENOTDIR), []api.ValueType{i32, i32, i32, i32, i32, i32}, []string{"fd", "old_path", "old_path_len", "new_fd", "new_path", "new_path_len"}},
		{"path_symlink", s.fdThen(2, ENOTDIR), []api.ValueType{i32, i32, i32, i32, i32}, []string{"old_path", "old_path_len", "fd", "new_path", "new_path_len"}},
		{"path_unlink_file", s.fdThen(0, ENOTDIR), []api.ValueType{i32, i32, i32}, []string{"fd", "path", "path_len"}},
		{"poll_oneoff", s.pollOneoff, []api.ValueType{i32, i32, i32, i32}, []string{"in", "out", "nsubscriptions", "result.nevents"}},
		{"proc_raise", s.procRaise, []api.ValueType{i32}, []string{"sig"}},
		{"sched_yield", s.schedYield, nil, nil},
		{"random_get", s.randomGet, []api.ValueType{i32, i32}, []string{"buf", "buf_len"}},
		{"sock_accept", s.sockAccept, []api.ValueType{i32, i32, i32}, []string{"fd", "flags", "result.fd"}},
		{"sock_recv", s.sockRecv, []api.ValueType{i32, i32, i32, i32, i32, i32}, []string{"fd", "ri_data", "ri_data_len", "ri_flags", "result.ro_datalen", "result.ro_flags"}},
		{"sock_send", s.sockSend, []api.ValueType{i32, i32, i32, i32, i32}, []string{"fd", "si_data", "si_data_len", "si_flags", "result.so_datalen"}},
		{"sock_shutdown", s.sockShutdown, []api.ValueType{i32, i32}, []string{"fd", "how"}},
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

var errnoResult = []api.ValueType{i32}

func (s *System) export(b wazero.HostModuleBuilder) {
	for _, e := range s.exports() {
		fn := e.fn
		b.NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
				stack[0] = uint64(fn(ctx, mod, stack))
			}), e.params, errnoResult).
			WithParameterNames(e.names...).
			WithResultNames("errno").
			Export(e.name)
	}
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(procExit), []api.ValueType{i32}, nil).
		WithParameterNames("rval").
		Export("proc_exit")
}

// Call invokes the named function directly on mod with params, as if the
// guest had called it (used by tests and fuzzing). It returns the errno.
func (s *System) Call(ctx context.Context, mod api.Module, name string, params ...uint64) (Errno, bool) {
	for _, e := range s.exports() {
		if e.name == name {
			stack := make([]uint64, max(len(params), 1))
			copy(stack, params)
			return e.fn(ctx, mod, stack), true
		}
	}
	return 0, false
}
