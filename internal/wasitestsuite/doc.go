// Package wasitestsuite runs the public WASI test suite
// (WebAssembly/wasi-testsuite, prebuilt wasm32-wasip1 tests of its Rust,
// C and AssemblyScript suites) through `enarx run`, as a user would: for
// each test it writes an Enarx.toml (stdio, the spec's args and env, and
// the test's root directory as a kind = "dir" preopen at "/"), runs the
// enarx binary on each backend that can run here (nil, sandbox) with each
// engine of the build, and compares the exit status and stdout with the
// test's spec. Tests whose root holds no fixture files also run on a
// memory directory, and on a new sealed volume (development key file; on
// nil only, its code being the same on every backend).
//
// The suite is third_party/wasi-testsuite (or where ENARX_WASI_TESTSUITE
// says; without the vendored copy, ../shared/testdata/wasi-testsuite next
// to the module root), laid out as LANG/wasm32-wasip1/NAME.wasm with
// NAME.json specs. Without it the test skips, and fails under CI=true.
//
// expectations.txt lists every run that cannot pass, each with its
// reason. The test fails on a run that fails without being listed (a
// regression) and on a listed run that passes (the list must stay
// honest), and on a line that matches no run.
//
// The package holds only this test; it trusts the suite's files as test
// input.
package wasitestsuite
