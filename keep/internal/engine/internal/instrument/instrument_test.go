package instrument

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/keep/internal/wasmtest"
)

// compiles reports whether wazero (the reference validator here: the
// Keep's engines accept the same feature set) accepts wasm.
func compiles(wasm []byte) (err error) {
	defer func() {
		if p := recover(); p != nil { // wazero's validator panics on some malformed modules
			err = fmt.Errorf("wazero panicked: %v", p)
		}
	}()
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer r.Close(ctx)
	_, err = r.CompileModule(ctx, wasm)
	return err
}

func goModule(t testing.TB) []byte {
	b, err := os.ReadFile(testutil.BuildWasm(t, "../../../../testdata/sha"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func seeds() [][]byte {
	return [][]byte{
		wasmtest.Loop(), wasmtest.Recurse(3), wasmtest.Grow(2), wasmtest.Memory(1),
		wasmtest.ProcExit("wasi_snapshot_preview1", 3), wasmtest.Return1(), wasmtest.NoExport(),
		wasmtest.StartSection(0x03, 0x40, 0x0c, 0x00, 0x0b), // (start) (loop br 0)
	}
}

func TestSeedCorpus(t *testing.T) { testutil.CheckSeedCorpus(t, "FuzzRewrite", seeds()) }

func TestRewrite(t *testing.T) {
	mods := append(seeds(), goModule(t))
	for i, wasm := range mods {
		for _, o := range []Options{{Interrupt: true}, {RecordGrow: true}, {Interrupt: true, RecordGrow: true}} {
			orig := bytes.Clone(wasm)
			res, err := Rewrite(wasm, o)
			if err != nil {
				t.Fatalf("module %d %+v: %v", i, o, err)
			}
			if !bytes.Equal(orig, wasm) {
				t.Fatal("the input was modified")
			}
			if err := compiles(res.Wasm); err != nil {
				t.Fatalf("module %d %+v: the rewritten module does not compile: %v", i, o, err)
			}
			if o.Interrupt != (res.Stop != "") || o.Interrupt != (res.Fuel != "") {
				t.Errorf("module %d %+v: stop global %q, fuel %q", i, o, res.Stop, res.Fuel)
			}
		}
	}
	// The Go module grows memory: the wrapper and its global are added.
	res, err := Rewrite(mods[len(mods)-1], Options{RecordGrow: true})
	if err != nil || res.Requested == "" {
		t.Fatalf("Go module: requested %q, %v", res.Requested, err)
	}
	// A module that never grows memory gets no wrapper.
	if res, _ := Rewrite(wasmtest.Loop(), Options{RecordGrow: true}); res.Requested != "" {
		t.Fatal("wrapper added to a module without memory.grow")
	}
}

// TestStartExported: with interruption checks, a start section becomes an
// export of the same function (which the engine calls after
// instantiation, interruptibly); without them it stays. A start index
// beyond the module's own functions (invalid as it is, and after the
// rewrite it would name $tick) is refused.
func TestStartExported(t *testing.T) {
	wasm := wasmtest.StartSection(0x03, 0x40, 0x0c, 0x00, 0x0b)
	res, err := Rewrite(wasm, Options{Interrupt: true})
	if err != nil || res.Start == "" {
		t.Fatalf("start %q, %v", res.Start, err)
	}
	if err := compiles(res.Wasm); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer r.Close(ctx)
	cm, err := r.CompileModule(ctx, res.Wasm)
	if err != nil {
		t.Fatal(err)
	}
	// Instantiating runs no start function (it would loop forever).
	mod, err := r.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithStartFunctions())
	if err != nil {
		t.Fatal(err)
	}
	if mod.ExportedFunction(res.Start) == nil {
		t.Fatalf("%q is not an exported function", res.Start)
	}
	if res, err := Rewrite(wasm, Options{RecordGrow: true}); err != nil || res.Start != "" {
		t.Fatalf("without interruption checks: start %q, %v", res.Start, err)
	}
	// (start 2) in a module of two functions.
	bad := bytes.Replace(wasm, []byte{0x08, 0x01, 0x00}, []byte{0x08, 0x01, 0x02}, 1)
	if bytes.Equal(bad, wasm) || compiles(bad) == nil {
		t.Fatal("the forged start index is not in place or the module is valid")
	}
	if _, err := Rewrite(bad, Options{Interrupt: true}); err == nil {
		t.Fatal("rewrote a start section naming a function the module lacks")
	}
}

// TestExportNameClash: the added exports never shadow the module's own.
func TestExportNameClash(t *testing.T) {
	wasm := wasmtest.ImportAll([]wasmtest.Import{{Module: "m", Name: "f"}})
	res, err := Rewrite(wasm, Options{Interrupt: true})
	if err != nil {
		t.Fatal(err)
	}
	again, err := Rewrite(res.Wasm, Options{Interrupt: true})
	if err != nil {
		t.Fatal(err)
	}
	if again.Stop == res.Stop || compiles(again.Wasm) != nil {
		t.Fatalf("second rewrite exported %q after %q", again.Stop, res.Stop)
	}
}

func TestMalformed(t *testing.T) {
	good := wasmtest.Loop()
	for i := 0; i < len(good); i++ {
		if _, err := Rewrite(good[:i], Options{Interrupt: true}); err == nil && i < 8 {
			t.Fatalf("accepted a %d-byte prefix", i)
		}
	}
	if _, err := Rewrite([]byte("\x00asm\x02\x00\x00\x00"), Options{Interrupt: true}); err == nil {
		t.Fatal("accepted version 2")
	}
}

// FuzzRewrite: Rewrite never panics; what it produces it can decode again
// (every section, body and instruction it wrote is well formed) and
// rewrite again; with nothing to do it returns its input. (Whether an engine accepts the result
// is TestRewrite's job, on real modules: wazero's decoder itself runs out
// of memory or time on some fuzzed inputs, which the Keep's pre-compile
// validator refuses before any engine sees them.)
func FuzzRewrite(f *testing.F) {
	for _, s := range seeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, wasm []byte) {
		for _, o := range []Options{{Interrupt: true}, {RecordGrow: true}, {Interrupt: true, RecordGrow: true}} {
			res, err := Rewrite(wasm, o)
			if err != nil {
				continue
			}
			again, err := Rewrite(res.Wasm, Options{})
			if err != nil {
				t.Fatalf("%+v: the output does not decode: %v", o, err)
			}
			if !bytes.Equal(again.Wasm, res.Wasm) {
				t.Fatal("a rewrite with nothing to do changed the module")
			}
			if _, err := Rewrite(res.Wasm, o); err != nil {
				t.Fatalf("%+v: the output cannot be rewritten again: %v", o, err)
			}
		}
	})
}

// TestForgedIndexes: a body naming the global or function the rewrite
// would add (invalid as it is) is refused, so a guest cannot clear its own
// interruption flag or forge its growth record.
func TestForgedIndexes(t *testing.T) {
	// (func (export "_start") i32.const 0 global.set 0): no global 0.
	forged := []byte("\x00asm\x01\x00\x00\x00\x01\x04\x01`\x00\x00\x03\x02\x01\x00\a\n\x01\x06_start\x00\x00\n\b\x01\x06\x00A\x00$\x00\v")
	if compiles(forged) == nil {
		t.Fatal("the forged module is valid as it is")
	}
	for _, o := range []Options{{Interrupt: true}, {RecordGrow: true}} {
		if _, err := Rewrite(forged, o); err == nil {
			t.Fatalf("%+v: rewrote a body that sets a global the module lacks", o)
		}
	}
	// call 1 where only function 0 exists.
	call := []byte("\x00asm\x01\x00\x00\x00\x01\x04\x01`\x00\x00\x03\x02\x01\x00\a\n\x01\x06_start\x00\x00\n\x06\x01\x04\x00\x10\x01\v")
	if _, err := Rewrite(call, Options{Interrupt: true}); err == nil {
		t.Fatal("rewrote a call to a function the module lacks")
	}
}
