// Package start holds the start-up benchmark of enarx (test only): the
// process wall time of `enarx run` for Go's hello on the nil and sandbox
// backends and each engine of the build, against minimal plain wazero and
// wasmtime-go runners and the native program, in the same run, caches
// warm. See bench/RESULTS.md.
package start
