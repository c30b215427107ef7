package wasi

import (
	"testing"

	"github.com/enarx-go/enarx/keep/internal/fd"
)

// TestRightsEnforced drops, with fd_fdstat_set_rights, the one right each
// call needs (as WASI preview1 names it) and checks the call then answers
// ENOTCAPABLE without touching the file system; with the right kept, the
// same call succeeds. Two descriptors of one directory (a, b) tell the
// source and target rights of path_rename and path_link apart.
func TestRightsEnforced(t *testing.T) { eachEngine(t, testRightsEnforced) }

func testRightsEnforced(t *testing.T, eng string) {
	// Memory: the names the calls use.
	const (
		pF   = pathOff       // "f": a file
		pNew = pathOff + 64  // "new": does not exist
		pSub = pathOff + 128 // "sub": an empty directory
		pL   = pathOff + 192 // "l": a symlink to "f"
		tgt  = pathOff + 256 // "f" again, as a symlink target
	)
	type fds struct{ a, b, file uint64 }
	dirA := func(d fds) uint64 { return d.a }
	file := func(d fds) uint64 { return d.file }
	cases := []struct {
		name   string
		right  uint64
		on     func(fds) uint64 // the descriptor that loses the right
		params func(fds) []uint64
	}{
		{"path_create_directory", fd.RightPathCreateDirectory, dirA,
			func(d fds) []uint64 { return []uint64{d.a, pNew, 3} }},
		{"path_unlink_file", fd.RightPathUnlinkFile, dirA,
			func(d fds) []uint64 { return []uint64{d.a, pF, 1} }},
		{"path_remove_directory", fd.RightPathRemoveDirectory, dirA,
			func(d fds) []uint64 { return []uint64{d.a, pSub, 3} }},
		{"path_rename", fd.RightPathRenameSource, dirA,
			func(d fds) []uint64 { return []uint64{d.a, pF, 1, d.b, pNew, 3} }},
		{"path_rename", fd.RightPathRenameTarget, dirA,
			func(d fds) []uint64 { return []uint64{d.b, pF, 1, d.a, pNew, 3} }},
		{"path_link", fd.RightPathLinkSource, dirA,
			func(d fds) []uint64 { return []uint64{d.a, 0, pF, 1, d.b, pNew, 3} }},
		{"path_link", fd.RightPathLinkTarget, dirA,
			func(d fds) []uint64 { return []uint64{d.b, 0, pF, 1, d.a, pNew, 3} }},
		{"path_symlink", fd.RightPathSymlink, dirA,
			func(d fds) []uint64 { return []uint64{tgt, 1, d.a, pNew, 3} }},
		{"path_readlink", fd.RightPathReadlink, dirA,
			func(d fds) []uint64 { return []uint64{d.a, pL, 1, bufOff, 64, resOff} }},
		{"path_filestat_get", fd.RightPathFilestatGet, dirA,
			func(d fds) []uint64 { return []uint64{d.a, 0, pF, 1, resOff} }},
		{"path_filestat_set_times", fd.RightPathFilestatSetTimes, dirA,
			func(d fds) []uint64 { return []uint64{d.a, 0, pF, 1, 5, 6, fstAtim | fstMtim} }},
		{"fd_filestat_set_times", fd.RightFdFilestatSetTimes, file,
			func(d fds) []uint64 { return []uint64{d.file, 5, 6, fstAtim | fstMtim} }},
		{"fd_filestat_set_times", fd.RightFdFilestatSetTimes, dirA,
			func(d fds) []uint64 { return []uint64{d.a, 5, 6, fstAtim | fstMtim} }},
		{"fd_sync", fd.RightFdSync, file,
			func(d fds) []uint64 { return []uint64{d.file} }},
		{"fd_sync", fd.RightFdSync, dirA,
			func(d fds) []uint64 { return []uint64{d.a} }},
		{"fd_datasync", fd.RightFdDatasync, file,
			func(d fds) []uint64 { return []uint64{d.file} }},
		{"fd_datasync", fd.RightFdDatasync, dirA,
			func(d fds) []uint64 { return []uint64{d.a} }},
		{"fd_advise", fd.RightFdAdvise, file,
			func(d fds) []uint64 { return []uint64{d.file, 0, 10, 0} }},
		{"fd_filestat_get", fd.RightFdFilestatGet, file,
			func(d fds) []uint64 { return []uint64{d.file, resOff} }},
		{"fd_filestat_get", fd.RightFdFilestatGet, dirA,
			func(d fds) []uint64 { return []uint64{d.a, resOff} }},
		{"fd_fdstat_set_flags", fd.RightFdFdstatSetFlags, file,
			func(d fds) []uint64 { return []uint64{d.file, uint64(fd.FlagAppend)} }},
		{"fd_fdstat_set_flags", fd.RightFdFdstatSetFlags, dirA,
			func(d fds) []uint64 { return []uint64{d.a, 0} }},
	}
	// setup makes a fresh file system with d/f, d/sub and d/l -> f, and
	// opens d twice (asking for every directory right) and d/f (every
	// right).
	setup := func() (*env, *fakeFS, fds) {
		e, fsys := newFSEnv(t, eng)
		root := &fakeDir{fs: fsys, n: fsys.root}
		if err := root.Mkdir("d"); err != nil {
			t.Fatal(err)
		}
		if err := root.Mkdir("d/sub"); err != nil {
			t.Fatal(err)
		}
		if err := root.Symlink("f", "d/l"); err != nil {
			t.Fatal(err)
		}
		e.open(preFD, "d/f", oflagCreat, fd.RightsAll, 0)
		var d fds
		d.file = e.open(preFD, "d/f", 0, fd.RightsAll, 0)
		d.a = e.open(preFD, "d", oflagDirectory, fd.RightsDir, 0)
		d.b = e.open(preFD, "d", oflagDirectory, fd.RightsDir, 0)
		e.str(pF, "f")
		e.str(pNew, "new")
		e.str(pSub, "sub")
		e.str(pL, "l")
		e.str(tgt, "f")
		return e, fsys, d
	}
	for _, c := range cases {
		// With every right the call works.
		e, _, d := setup()
		e.expect(ESUCCESS, c.name, c.params(d)...)

		// Without the one right it is refused, before any change.
		e, fsys, d := setup()
		target := c.on(d)
		e.expect(ESUCCESS, "fd_fdstat_get", target, resOff)
		base, inh := e.u64(resOff+8), e.u64(resOff+16)
		if base&c.right == 0 {
			t.Fatalf("%s: fd %d starts without right %#x (base %#x)", c.name, target, c.right, base)
		}
		e.expect(ESUCCESS, "fd_fdstat_set_rights", target, base&^c.right, inh)
		before := fsys.snapshot()
		if got := e.call(c.name, c.params(d)...); got != ENOTCAPABLE {
			t.Errorf("%s%v without right %#x = errno %d, want ENOTCAPABLE", c.name, c.params(d), c.right, got)
		}
		if fsys.snapshot() != before {
			t.Errorf("%s without right %#x changed the file system", c.name, c.right)
		}
	}
	// poll_oneoff on a file without POLL_FD_READWRITE: the subscription's
	// event carries ENOTCAPABLE (the call itself succeeds).
	{
		e, _, d := setup()
		e.expect(ESUCCESS, "fd_fdstat_get", d.file, resOff)
		base, inh := e.u64(resOff+8), e.u64(resOff+16)
		e.expect(ESUCCESS, "fd_fdstat_set_rights", d.file, base&^fd.RightPollFdReadwrite, inh)
		const subs, events = bufOff, bufOff + 512
		e.sub(subs, 7, tagFdRead, uint32(d.file), 0, 0)
		e.expect(ESUCCESS, "poll_oneoff", subs, events, 1, resOff)
		if ud, errno, _ := e.event(events, 0); ud != 7 || Errno(errno) != ENOTCAPABLE {
			t.Errorf("poll_oneoff on a file without POLL_FD_READWRITE: event %d errno %d, want 7 and ENOTCAPABLE", ud, errno)
		}
	}
	// A preopen starts with every right a directory call needs, and
	// passes them on to the directories opened beneath it.
	e, _, d := setup()
	for _, n := range []uint64{preFD, d.a} {
		e.expect(ESUCCESS, "fd_fdstat_get", n, resOff)
		if base, need := e.u64(resOff+8), uint64(fd.RightsDir); base&need != need {
			t.Errorf("fd %d: base rights %#x lack %#x", n, base, need&^base)
		}
	}
}
