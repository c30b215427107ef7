// Package e2e holds end-to-end tests and benchmarks of the Keep identity:
// real wasm workloads (examples/tls-*) run by keep.Run, a real Steward
// (package steward) on 127.0.0.1, and Go TLS clients and servers that check
// what a relying party would check. It has no non-test code; it is a
// separate package so that the identity package's own tests do not depend
// on the Keep runtime.
package e2e
