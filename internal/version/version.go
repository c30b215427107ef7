// Package version holds the release version of all enarx binaries.
package version

// Version is the release version, printed by --version.
const Version = "0.1.0-dev"
