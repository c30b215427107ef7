package tree_test

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// model is the reference the resolver is checked against: a map from
// root-relative path ("" is the root) to node, and a resolver written the
// obvious recursive way.
type model struct {
	nodes map[string]modelNode
}

type modelNode struct {
	kind   fd.Filetype
	target string
}

func join(dir []string) string { return strings.Join(dir, "/") }

// resolve is the reference: path from base (a directory), following a
// final symlink if follow or if path ends in '/'. It returns the path of
// what path names.
func (m *model) resolve(base []string, path string, follow bool) ([]string, error) {
	switch {
	case path == "":
		return nil, syscall.ENOENT
	case len(path) > vfs.MaxPath:
		return nil, syscall.ENAMETOOLONG
	case strings.ContainsRune(path, 0):
		return nil, syscall.EINVAL
	}
	links := 0
	res, exists, slash, err := m.walk(len(base), base, path, follow || strings.HasSuffix(path, "/"), &links)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, syscall.ENOENT
	}
	if slash && m.nodes[join(res)].kind != fd.FiletypeDirectory {
		return nil, syscall.ENOTDIR
	}
	return res, nil
}

// walk resolves path from directory cur; ".." may not go above depth
// floor. It reports whether the result exists and whether the final
// component had a trailing slash.
func (m *model) walk(floor int, cur []string, path string, follow bool, links *int) ([]string, bool, bool, error) {
	if strings.HasPrefix(path, "/") {
		return nil, false, false, vfs.ErrNotCapable
	}
	trailing := strings.HasSuffix(path, "/")
	var comps []string
	for _, c := range strings.Split(path, "/") {
		if c != "" {
			comps = append(comps, c)
		}
	}
	cur = append([]string(nil), cur...)
	for i, c := range comps {
		last := i == len(comps)-1
		switch c {
		case ".":
			if last {
				return cur, true, trailing, nil
			}
			continue
		case "..":
			if len(cur) <= floor {
				return nil, false, false, vfs.ErrNotCapable
			}
			cur = cur[:len(cur)-1]
			if last {
				return cur, true, trailing, nil
			}
			continue
		}
		if len(c) > vfs.MaxName {
			return nil, false, false, syscall.ENAMETOOLONG
		}
		p := append(append([]string(nil), cur...), c)
		n, ok := m.nodes[join(p)]
		switch {
		case !ok && last:
			return p, false, trailing, nil
		case !ok:
			return nil, false, false, syscall.ENOENT
		case n.kind == fd.FiletypeSymbolicLink && (!last || follow):
			*links++
			if *links > vfs.MaxSymlinks {
				return nil, false, false, syscall.ELOOP
			}
			r, exists, slash, err := m.walk(floor, cur, n.target, true, links)
			if err != nil {
				return nil, false, false, err
			}
			if last {
				return r, exists, slash || trailing, nil
			}
			if !exists {
				return nil, false, false, syscall.ENOENT
			}
			if m.nodes[join(r)].kind != fd.FiletypeDirectory {
				return nil, false, false, syscall.ENOTDIR
			}
			cur = r
		case last:
			return p, true, trailing, nil
		case n.kind != fd.FiletypeDirectory:
			return nil, false, false, syscall.ENOTDIR
		default:
			cur = p
		}
	}
	// Only a path of slashes has no component; it is absolute.
	return nil, false, false, vfs.ErrNotCapable
}

// mkdir is the reference for Mkdir: the path resolved without following
// its final component must not exist; it returns where the directory goes.
func (m *model) mkdir(base []string, path string) ([]string, error) {
	switch {
	case path == "":
		return nil, syscall.ENOENT
	case len(path) > vfs.MaxPath:
		return nil, syscall.ENAMETOOLONG
	case strings.ContainsRune(path, 0):
		return nil, syscall.EINVAL
	}
	links := 0
	res, exists, _, err := m.walk(len(base), base, path, false, &links)
	if err != nil {
		return nil, err
	}
	if exists {
		return nil, syscall.EEXIST
	}
	return res, nil
}

func sameErr(got, want error) bool {
	if got == nil || want == nil {
		return got == want
	}
	return errors.Is(got, want) || errors.Is(want, got)
}

// beneath reports whether root-relative path p is base or beneath it.
func beneath(p string, base []string) bool {
	return len(base) == 0 || strings.HasPrefix(p+"/", join(base)+"/")
}

var (
	fuzzNames   = []string{"a", "b", "c", "d"}
	fuzzTargets = []string{
		"a", "b", "..", "../a", "a/b", "/abs", ".", "b/", "../..", "../../a",
		"c/../a", "a/../../b", "./c", "d//a", "a/.", "../b/../c/", "c/d/a",
		"a/b/c/d", "..//..", strings.Repeat("n", vfs.MaxName+1),
	}
)

// FuzzResolve builds a random small tree (directories, files, symlinks
// with targets that loop, dangle, climb and go absolute) through the Dir
// API and a model of it, then resolves a path from one of its directories
// both ways: the results (the node named, or the error) agree, and
// nothing resolves above the directory the path is relative to.
func FuzzResolve(f *testing.F) {
	f.Add([]byte{0, 0, 0, 2, 0, 1, 0, 1, 2}, "b/b", uint8(0), true)
	f.Fuzz(func(t *testing.T, ops []byte, path string, baseIdx uint8, follow bool) {
		if len(ops) > 3*64 {
			ops = ops[:3*64]
		}
		root := newRoot(t)
		m := &model{nodes: map[string]modelNode{"": {kind: fd.FiletypeDirectory}}}
		dirs := [][]string{nil}
		for i := 0; i+2 < len(ops); i += 3 {
			op, parent, name := ops[i], dirs[int(ops[i+1])%len(dirs)], fuzzNames[int(ops[i+2])%len(fuzzNames)]
			p := append(append([]string(nil), parent...), name)
			if _, ok := m.nodes[join(p)]; ok {
				continue
			}
			var err error
			switch op % 4 {
			case 0:
				err = root.Mkdir(join(p))
				m.nodes[join(p)] = modelNode{kind: fd.FiletypeDirectory}
				dirs = append(dirs, p)
			case 1:
				var h fd.File
				h, err = root.Open(join(p), vfs.OpenOptions{Create: true, Excl: true, Write: true})
				if err == nil {
					h.Close()
				}
				m.nodes[join(p)] = modelNode{kind: fd.FiletypeRegularFile}
			default:
				target := fuzzTargets[int(op/4)%len(fuzzTargets)]
				err = root.Symlink(target, join(p))
				m.nodes[join(p)] = modelNode{kind: fd.FiletypeSymbolicLink, target: target}
			}
			if err != nil {
				t.Fatalf("building %q: %v", join(p), err)
			}
		}
		pathOf := map[uint64]string{}
		for p := range m.nodes {
			name := p
			if name == "" {
				name = "."
			}
			st, err := root.StatAt(name, false)
			if err != nil {
				t.Fatalf("lstat %q: %v", name, err)
			}
			pathOf[st.Ino] = p
		}
		base := dirs[int(baseIdx)%len(dirs)]
		var d vfs.Dir = root
		if len(base) > 0 {
			h, err := root.Open(join(base), vfs.OpenOptions{Directory: true, Read: true})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			d = h.(vfs.Dir)
		}
		want, wantErr := m.resolve(base, path, follow)
		st, err := d.StatAt(path, follow)
		if !sameErr(err, wantErr) {
			t.Fatalf("base %q path %q follow %v: tree %v (%v), reference %q (%v)", join(base), path, follow, pathOf[st.Ino], err, join(want), wantErr)
		}
		if err == nil {
			got, ok := pathOf[st.Ino]
			if !ok || got != join(want) {
				t.Fatalf("base %q path %q follow %v: tree %q, reference %q", join(base), path, follow, got, join(want))
			}
			if !beneath(got, base) {
				t.Fatalf("base %q path %q resolved above its directory to %q", join(base), path, got)
			}
		}

		// Mkdir resolves the same way without following the final
		// component, and creates where the reference says.
		want, wantErr = m.mkdir(base, path)
		err = d.Mkdir(path)
		if !sameErr(err, wantErr) {
			t.Fatalf("base %q mkdir %q: tree %v, reference %q (%v)", join(base), path, err, join(want), wantErr)
		}
		if err == nil {
			if !beneath(join(want), base) {
				t.Fatalf("base %q mkdir %q created above its directory at %q", join(base), path, join(want))
			}
			st, err := root.StatAt(join(want), false)
			if _, old := pathOf[st.Ino]; err != nil || st.Type != fd.FiletypeDirectory || old {
				t.Fatalf("base %q mkdir %q: nothing new at %q (%v)", join(base), path, join(want), err)
			}
		}
	})
}
