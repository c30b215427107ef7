package sandbox

import (
	"log/slog"
	"os"
	"syscall"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/config"
)

// warnUnwritableDirs warns, before the Keep starts, of each read-write
// dir entry whose host directory the Keep's user cannot write by its mode
// bits: with enarx as root the Keep runs as "nobody" (keepHostID), and a
// directory owned by root with the usual 0755 would otherwise show up only
// as the workload's "permission denied" (or a sealed volume that cannot
// commit). It is a warning, not an error: an ACL may grant what the mode
// bits do not.
func warnUnwritableDirs(l *backend.Launch, log *slog.Logger) {
	if l.Config == nil {
		return
	}
	if log == nil {
		log = slog.Default()
	}
	uid := keepHostID(os.Getuid())
	gid := keepHostID(os.Getgid())
	for i, f := range l.Files {
		if f == nil || i >= len(l.Config.Files) {
			continue
		}
		e := l.Config.Files[i]
		if e.Kind != config.KindDir || e.Dir == nil || e.Dir.ReadOnly {
			continue
		}
		fi, err := f.Stat()
		if err != nil {
			continue
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || writableBy(st, uid, gid) {
			continue
		}
		log.Warn("sandbox: the Keep's user cannot write this read-write directory (by its mode bits); the workload will get \"permission denied\"; "+
			"make it writable by that user (e.g. chown it to that uid), run enarx as the directory's owner, or set readonly = true",
			"entry", e.Name, "host_path", e.Dir.HostPath, "keep_uid", uid, "dir_uid", st.Uid, "mode", fi.Mode().Perm().String())
	}
}

// writableBy reports whether st's mode bits let uid (in group gid) create
// entries in the directory.
func writableBy(st *syscall.Stat_t, uid, gid int) bool {
	const w, x = 0o2, 0o1
	mode := st.Mode
	switch {
	case int(st.Uid) == uid:
		return mode>>6&(w|x) == w|x
	case int(st.Gid) == gid:
		return mode>>3&(w|x) == w|x
	}
	return mode&(w|x) == w|x
}
