package sandbox

import (
	"syscall"
	"testing"
)

func TestWritableBy(t *testing.T) {
	for _, c := range []struct {
		uid, gid uint32
		mode     uint32
		want     bool
	}{
		{0, 0, 0o755, false},     // root's usual directory: not for nobody
		{65534, 0, 0o755, true},  // owned by the Keep's user
		{65534, 0, 0o555, false}, // owned, but not writable
		{0, 65534, 0o775, true},  // the Keep's group may write
		{0, 65534, 0o757, false}, // group bits rule for a member, as in the kernel
		{0, 0, 0o777, true},      // others may write
		{0, 0, 0o1777, true},     // sticky: creating is allowed
		{0, 0, 0o776, false},     // others may write but not search
		{65534, 65534, 0o077, false},
	} {
		st := &syscall.Stat_t{Uid: c.uid, Gid: c.gid, Mode: syscall.S_IFDIR | c.mode}
		if got := writableBy(st, 65534, 65534); got != c.want {
			t.Errorf("uid %d gid %d mode %o: writable %v, want %v", c.uid, c.gid, c.mode, got, c.want)
		}
	}
}
