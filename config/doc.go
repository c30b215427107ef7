// Package config parses and validates Enarx.toml, the workload configuration:
// the Steward URL, argv, environment, and the [[files]] table that becomes the
// workload's WASI file descriptors.
//
// Input is untrusted: a Keep parses the bytes itself (the host's copy is only
// used to open sockets on the host side). Parsing never panics and every error
// names the file, line and field.
package config
