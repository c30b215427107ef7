package tree

import (
	"strings"
	"syscall"

	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// found is the result of resolving a path.
type found struct {
	// dir is the directory holding the final component name, or nil when
	// the path ends in "." or ".." (then name is that, and node the
	// directory it names).
	dir  *node
	name string
	// node is what the path names; nil if the final component does not
	// exist in dir.
	node *node
	// slash is set when the path ends in '/' (the final component must be
	// a directory).
	slash bool
}

// resolve walks path from base (t.mu held), the one resolver every
// operation uses. Components are separated by one or more '/'; "." stays
// and ".." goes up, never above base (vfs.ErrNotCapable); symlinks in
// earlier components are always expanded, a final one only if follow;
// expansions are bounded by vfs.MaxSymlinks (ELOOP). An absolute path or
// symlink target is vfs.ErrNotCapable. A missing final component is not an
// error (found.node is nil); a missing earlier one is ENOENT, and a
// non-directory before the final component ENOTDIR.
func (t *Tree) resolve(base *node, path string, follow bool) (found, error) {
	if err := checkPath(path); err != nil {
		return found{}, err
	}
	// stack is the walk from base to the current directory: ".." pops it,
	// and popping base itself would leave the directory the path is
	// relative to.
	stack := make([]*node, 1, 8)
	stack[0] = base
	todo := path
	links := 0
	for {
		if todo[0] == '/' {
			return found{}, vfs.ErrNotCapable
		}
		comp, rest, slash := strings.Cut(todo, "/")
		rest = strings.TrimLeft(rest, "/")
		last := rest == ""
		cur := stack[len(stack)-1]
		switch comp {
		case ".":
			if last {
				return found{name: ".", node: cur, slash: slash}, nil
			}
			todo = rest
			continue
		case "..":
			if len(stack) == 1 {
				return found{}, vfs.ErrNotCapable
			}
			stack = stack[:len(stack)-1]
			if last {
				return found{name: "..", node: stack[len(stack)-1], slash: slash}, nil
			}
			todo = rest
			continue
		}
		if len(comp) > vfs.MaxName {
			return found{}, syscall.ENAMETOOLONG
		}
		var child *node
		if e := cur.entries[comp]; e != nil {
			child = e.node
		}
		if last && (child == nil || child.kind != fd.FiletypeSymbolicLink || !follow) {
			return found{dir: cur, name: comp, node: child, slash: slash}, nil
		}
		switch {
		case child == nil:
			return found{}, syscall.ENOENT
		case child.kind == fd.FiletypeSymbolicLink:
			links++
			if links > vfs.MaxSymlinks {
				return found{}, syscall.ELOOP
			}
			target := child.target
			if target == "" {
				return found{}, syscall.ENOENT
			}
			switch {
			case rest != "":
				todo = target + "/" + rest
			case slash:
				todo = target + "/"
			default:
				todo = target
			}
		case child.kind == fd.FiletypeDirectory:
			stack = append(stack, child)
			todo = rest
		default:
			return found{}, syscall.ENOTDIR
		}
	}
}

// checkPath checks what the WASI layer already checked (so that a caller
// that did not cannot get past here): not empty, at most vfs.MaxPath
// bytes, no NUL.
func checkPath(path string) error {
	switch {
	case path == "":
		return syscall.ENOENT
	case len(path) > vfs.MaxPath:
		return syscall.ENAMETOOLONG
	case strings.IndexByte(path, 0) >= 0:
		return syscall.EINVAL
	}
	return nil
}
