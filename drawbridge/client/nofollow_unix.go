//go:build unix

package client

import "syscall"

// oNoFollow makes an open fail (ELOOP) on a symbolic link.
const oNoFollow = syscall.O_NOFOLLOW
