package engine

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"unsafe"
)

// spinUntilFlag is a module whose _start calls env.entered, then spins
// until the i32 at address 0 becomes non-zero (storing 1 at address 4
// when it does) or 2³¹-1 iterations have passed, without calling the host.
func spinUntilFlag() []byte {
	body := []byte{
		0x01, 0x01, 0x7f, // one i32 local
		0x10, 0x00, // call $entered
		0x41, 0xff, 0xff, 0xff, 0xff, 0x07, // i32.const 0x7fffffff
		0x21, 0x00, // local.set 0
		0x03, 0x40, // loop
		0x41, 0x00, 0x28, 0x02, 0x00, // i32.load [0]
		0x04, 0x40, // if
		0x41, 0x04, 0x41, 0x01, 0x36, 0x02, 0x00, // i32.store [4] = 1
		0x0f,                                     // return
		0x0b,                                     // end if
		0x20, 0x00, 0x41, 0x01, 0x6b, 0x22, 0x00, // local.tee 0 (local 0 - 1)
		0x0d, 0x00, // br_if 0
		0x0b, // end loop
		0x0b, // end func
	}
	section := func(id byte, content ...byte) []byte {
		return append([]byte{id, byte(len(content))}, content...)
	}
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = append(m, section(1, 0x01, 0x60, 0x00, 0x00)...)                                                         // type () -> ()
	m = append(m, section(2, 0x01, 0x03, 'e', 'n', 'v', 0x07, 'e', 'n', 't', 'e', 'r', 'e', 'd', 0x00, 0x00)...) // import env.entered
	m = append(m, section(3, 0x01, 0x00)...)                                                                     // func 1: type 0
	m = append(m, section(5, 0x01, 0x00, 0x01)...)                                                               // memory 1 page
	m = append(m, section(7, 0x02, 0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x01,
		0x06, 'm', 'e', 'm', 'o', 'r', 'y', 0x02, 0x00)...) // exports
	code := append([]byte{0x01, byte(len(body))}, body...)
	return append(m, section(10, code...)...)
}

// TestComputingGuestPreemptible: while a guest computes without calling
// the host, the rest of the process runs — a garbage collection
// completes, and a goroutine that waited for it then acts — with and
// without interruption (Config.NoInterrupt, as the sandbox and the enarx
// command's nil Keeps run). The goroutine sets the flag the guest spins
// on only after runtime.GC returns: if the guest blocked the collection's
// stop-the-world, the flag would come after the guest gave up (2³¹
// iterations) and the guest would not have seen it.
func TestComputingGuestPreemptible(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng string) {
		for _, noInterrupt := range []bool{true, false} {
			wd := watchdog(t)
			ctx := context.Background()
			e, err := New(ctx, Config{Engine: eng, NoInterrupt: noInterrupt})
			if err != nil {
				t.Fatal(err)
			}
			m, err := e.Compile(ctx, spinUntilFlag())
			if err != nil {
				t.Fatal(err)
			}
			in, err := m.Instantiate(ctx, []HostFunc{{Module: "env", Name: "entered",
				Fn: func(_ context.Context, c Caller, _ []uint64) error {
					flag := (*uint32)(unsafe.Pointer(&c.Memory()[0]))
					go func() {
						runtime.GC()
						atomic.StoreUint32(flag, 1)
					}()
					return nil
				}}})
			if err != nil {
				t.Fatal(err)
			}
			if err := within(t, wd, "Call", func() error { return in.Call(ctx, "_start") }); err != nil {
				t.Fatal(err)
			}
			seen := in.Memory()[4]
			if err := e.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if seen != 1 {
				t.Fatalf("NoInterrupt=%v: the guest computed 2³¹ iterations before a garbage collection could finish: it blocks the process", noInterrupt)
			}
		}
	})
}
