// Package tree is an in-memory directory namespace with vfs.Dir and
// vfs.File semantics, shared by the memory and sealed sources of the
// Keep's file systems (issue 12). It owns the namespace — directories,
// regular files, symlinks, hard links, inode numbers, link counts, times,
// readdir cookies — and the one path resolver every operation uses; the
// bytes of regular files live in a pluggable Store.
//
// # Trust
//
// Paths come from the untrusted guest (already checked by the WASI layer
// for UTF-8, NUL and length, and checked again here). Every path is
// resolved beneath the directory handle it is relative to: an absolute
// path, a ".." above that directory, or a symlink whose expansion would
// leave it fails with vfs.ErrNotCapable; symlink expansion is bounded by
// vfs.MaxSymlinks (ELOOP). Nothing in the tree refers to the host. A
// snapshot handed to Load is checked (every entry names a node, every
// directory is linked exactly once from a tree rooted at the root, names
// are valid) and so may come from storage the caller authenticated.
//
// # API
//
//   - New(Options) makes a tree with an empty root; Load(Snapshot,
//     Options) rebuilds one. Tree.Root returns an open *Dir on the root,
//     which implements vfs.Dir; Dir.Open returns *Dir or *File (vfs.File).
//   - Store supplies Content (ReadAt, WriteAt, Truncate, Size, Sync) for
//     each regular file: New for a created file, Open for a file of a
//     loaded snapshot, Free when the file has no name and no open handle
//     left. Store.Charge accounts namespace metadata (InodeCost per inode,
//     EntryCost plus the name's length per directory entry, a symlink's
//     target length) and may refuse it with ENOSPC. Store.Commit is
//     called, one call at a time and without the tree's lock held, after
//     File.Sync/Datasync (after Content.Sync) and Dir.Sync; a persistent
//     store serializes the tree there with Tree.Snapshot.
//   - Tree.Snapshot returns every node reachable from the root (inode
//     number, type, link count, size, times, symlink target, directory
//     entries by inode number, the file's Content) and Tree.Gen counts the
//     tree's changes, so a store can skip a commit that changes nothing.
//   - A content type may also implement Allocator (fd_allocate that
//     reserves space).
//   - Rename and Link accept as the new directory any vfs.Dir that
//     implements TreeDir (a *Dir, or a source's wrapper of one) of the
//     same tree; anything else is EXDEV. Dir.Tree, File.Ino and
//     File.Content give a source its own objects back.
//   - Errors are syscall.Errno values (EROFS for any change to a
//     read-only tree) and vfs.ErrNotCapable; a Store's errors pass
//     through unchanged. ReadAt returns io.EOF with a short count at the
//     end of a file, Read 0 and io.EOF.
//
// Times: creation sets all three; writes and truncation set mtim and ctim;
// entry changes set the directory's mtim and ctim; link-count changes and
// renames set the node's ctim. Reads do not update atim (as noatime).
//
// Locking: one mutex per tree guards the namespace and metadata; file data
// is read and written under a per-file lock taken without the tree's, so
// a long write does not stall lookups. Content methods are called with at
// most the per-file lock held (Size also under the tree's lock), never
// with a lock a Store method may need.
package tree
