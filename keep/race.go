//go:build race

package keep

// raceSlowdown scales DefaultCompileTimeout in race-detector builds, which
// only tests make (enarx is never shipped with -race). The detector
// instruments wazero's compiler, which then compiles a Go-built module 11
// times slower on a quiet machine (the 2.6 MB hello: 3.7 s, 40 s with
// -race) and more when test packages run side by side: the deadline, tens
// of times a real compile, keeps that meaning only if it grows as well.
const raceSlowdown = 20
