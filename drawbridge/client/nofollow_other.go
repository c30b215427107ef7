//go:build !unix

package client

// oNoFollow is not available here; BuildTree's Lstat and the os.SameFile
// check at upload still refuse a symbolic link.
const oNoFollow = 0
