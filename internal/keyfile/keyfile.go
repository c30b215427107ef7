// Package keyfile checks how a server's private key file is exposed on the
// host before the server uses it. It trusts the file system's metadata (the
// operator's host); it never reads or logs the key.
package keyfile

import (
	"log/slog"
	"os"
)

// Exposed is the mode bits that make a key file exposed: any access by
// other users, or write by its group. Group read is not: a key shared with
// the server's group (deploy/k8s mounts secrets 0440 with the pod's
// fsGroup, Debian's ssl-cert group) is a common, deliberate setup.
const Exposed os.FileMode = 0o027

// WarnIfExposed logs a warning when the file at path has any Exposed mode
// bit set, naming the flag that gave it. A warning, not a refusal:
// Kubernetes mounts secrets 0644 unless told otherwise, and a server that
// will not start is worse than one whose operator was told. A path that
// cannot be stat'ed is left to the reader of the file to report.
func WarnIfExposed(log *slog.Logger, flag, path string) {
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm()&Exposed == 0 {
		return
	}
	log.Warn("private key file is open to other users (or writable by its group); chmod 600 or 640 it "+
		"(in Kubernetes: defaultMode: 0400 or 0440 on the secret volume)",
		"flag", flag, "path", path, "mode", st.Mode().Perm().String())
}
