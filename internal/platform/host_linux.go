package platform

import (
	"strings"

	"golang.org/x/sys/unix"
)

func systemInfo() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	f := func(b []byte) string { return strings.TrimRight(string(b), "\x00") }
	return strings.Join([]string{f(u.Sysname[:]), f(u.Release[:]), f(u.Version[:]), f(u.Machine[:])}, " ")
}
