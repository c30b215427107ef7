//go:build linux && amd64

package sandbox

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"go/format"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/elastic/go-seccomp-bpf/arch"
	"github.com/enarx-go/enarx/internal/testutil"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

var updateSeccomp = flag.Bool("update-seccomp", false, "rewrite "+seccompProgramsFile+" from the allow-lists (go generate)")

const seccompProgramsFile = "zseccomp_linux_amd64.go"

// The Keep's filter program, assembled here at generate time.
//
// go-seccomp-bpf (v1.6.0) names the system call numbers (its arch tables)
// but does not assemble the program: when a call's argument conditions
// fail, its program goes on to the next call's check with the argument,
// not the call number, in the accumulator, so one call's refused arguments
// can pass another call's test. With it, sendto with the destination
// address 234 on fd 1 was allowed as if it were tgkill (234) of the Keep's
// pid 1, newfstatat with flags 44 (no AT_EMPTY_PATH) as if it were sendto
// (44), and with directories clone(CLONE_VM|SIGKILL) — a new process,
// 0x109 — as if it were linkat (265) with flags 0. Here every call's
// conditions end in a return, so nothing is compared with a value of the
// wrong kind (TestSeccompProgramsDecide).
//
// The layout, short forward jumps only:
//
//	ld arch; wrong arch → EPERM; ld nr; x32 ABI → ENOSYS
//	jeq nr₁ → ALLOW … jeq nrₙ → ALLOW; ja over ALLOW; ALLOW: ret allow
//	per call with conditions: nr ≠ → skip; per condition set: each
//	  argument word loaded and compared (a failure skips to the next
//	  set), ret allow; after the last set ret EPERM
//	clone3 → ENOSYS; ret EPERM
const (
	seccompAllow = unix.SECCOMP_RET_ALLOW
	seccompEPERM = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	seccompNoSys = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	x32Bit       = 0x40000000 // __X32_SYSCALL_BIT
	offNr        = 0          // struct seccomp_data
	offArch      = 4
	offArgs      = 16 // args[i] at 16 + 8i: low word first (little-endian)
)

func syscallNr(name string) (uint32, error) {
	nr, ok := arch.X86_64.SyscallNames[name]
	if !ok {
		return 0, fmt.Errorf("no amd64 system call %q", name)
	}
	return uint32(nr), nil
}

// condSet is the instructions that test one condition set: each
// failing comparison jumps to the end of the set (skipping its ret allow).
func condSet(set argConds, pid int, tgkill bool) ([]bpf.Instruction, error) {
	type step struct {
		in   bpf.Instruction
		test bool // a comparison whose false branch leaves the set
	}
	var steps []step
	word := func(off uint32, want uint32, mask uint32, bits bool) {
		steps = append(steps, step{in: bpf.LoadAbsolute{Off: off, Size: 4}})
		if bits {
			steps = append(steps, step{in: bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mask}})
		}
		steps = append(steps, step{in: bpf.JumpIf{Cond: bpf.JumpEqual, Val: want}, test: true})
	}
	for _, c := range set {
		if c.arg > 5 {
			return nil, fmt.Errorf("argument %d: a system call has six", c.arg)
		}
		v := c.value
		if tgkill && c.arg == 0 {
			v = uint64(pid)
		}
		lo, hi := uint32(v), uint32(v>>32)
		off := offArgs + 8*c.arg
		if !c.bitsSet {
			word(off+4, hi, 0, false)
			word(off, lo, 0, false)
			continue
		}
		// Every bit of the mask set; a word without mask bits is free.
		if hi != 0 {
			word(off+4, hi, hi, true)
		}
		if lo != 0 {
			word(off, lo, lo, true)
		}
	}
	out := make([]bpf.Instruction, 0, len(steps)+1)
	for i, s := range steps {
		if s.test {
			skip := len(steps) - i // over the rest and the ret allow
			if skip > 255 {
				return nil, fmt.Errorf("condition set too long for a BPF jump")
			}
			j := s.in.(bpf.JumpIf)
			j.SkipFalse = uint8(skip)
			s.in = j
		}
		out = append(out, s.in)
	}
	return append(out, bpf.RetConstant{Val: seccompAllow}), nil
}

// assembleSeccomp is the Keep's filter for pid (tgkill's first argument)
// with or without its compilation cache and passed directories.
func assembleSeccomp(pid int, cache, dirs bool) ([]bpf.Instruction, error) {
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: offArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.AUDIT_ARCH_X86_64, SkipTrue: 1},
		bpf.RetConstant{Val: seccompEPERM},
		bpf.LoadAbsolute{Off: offNr, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: x32Bit, SkipFalse: 1},
		bpf.RetConstant{Val: seccompNoSys},
	}
	var plain []uint32
	var conds []allowedSyscall
	for _, s := range policyEntries(cache, dirs) {
		if s.conds != nil {
			conds = append(conds, s)
			continue
		}
		nr, err := syscallNr(s.name)
		if err != nil {
			return nil, err
		}
		plain = append(plain, nr)
	}
	if len(plain) > 255 {
		return nil, fmt.Errorf("%d unconditional calls: too many for one BPF jump", len(plain))
	}
	for i, nr := range plain {
		// To the ret allow after the chain and its ja.
		prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipTrue: uint8(len(plain) - i)})
	}
	prog = append(prog, bpf.Jump{Skip: 1}, bpf.RetConstant{Val: seccompAllow})
	for _, s := range conds {
		nr, err := syscallNr(s.name)
		if err != nil {
			return nil, err
		}
		var body []bpf.Instruction
		for _, set := range s.conds {
			ins, err := condSet(set, pid, s.name == "tgkill")
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s.name, err)
			}
			body = append(body, ins...)
		}
		body = append(body, bpf.RetConstant{Val: seccompEPERM})
		if len(body) > 255 {
			return nil, fmt.Errorf("%s: conditions too long for a BPF jump", s.name)
		}
		prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipFalse: uint8(len(body))})
		prog = append(prog, body...)
	}
	for _, name := range enosysSyscalls {
		nr, err := syscallNr(name)
		if err != nil {
			return nil, err
		}
		prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipFalse: 1}, bpf.RetConstant{Val: seccompNoSys})
	}
	return append(prog, bpf.RetConstant{Val: seccompEPERM}), nil
}

func rawProgram(t *testing.T, insns []bpf.Instruction) []unix.SockFilter {
	t.Helper()
	raw, err := bpf.Assemble(insns)
	if err != nil {
		t.Fatalf("assembling BPF: %v", err)
	}
	out := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		out[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return out
}

func mustAssemble(t *testing.T, pid int, cache, dirs bool) ([]bpf.Instruction, []unix.SockFilter) {
	t.Helper()
	insns, err := assembleSeccomp(pid, cache, dirs)
	if err != nil {
		t.Fatalf("assembling the policy: %v", err)
	}
	return insns, rawProgram(t, insns)
}

// TestSeccompPrograms: the prebuilt filters are exactly what the assembler
// above makes of the allow-lists today, for every variant and for pids
// other than the placeholder; with -update-seccomp it rewrites them.
func TestSeccompPrograms(t *testing.T) {
	if *updateSeccomp {
		// The test binary holds the old programs: check the new ones
		// in the next run.
		writeSeccompPrograms(t)
		return
	}
	for cache := range 2 {
		for dirs := range 2 {
			for _, pid := range []int{pidPlaceholder, 2, 4096, 1 << 22, 1<<31 - 1} {
				got, err := seccompProgram(pid, cache == 1, dirs == 1)
				if err != nil {
					t.Fatal(err)
				}
				_, want := mustAssemble(t, pid, cache == 1, dirs == 1)
				if !slices.Equal(got, want) {
					t.Fatalf("cache %d dirs %d pid %d: the prebuilt filter differs from the allow-lists' (run go generate ./backend/sandbox)", cache, dirs, pid)
				}
			}
		}
	}
	// A pid the filter cannot hold is refused, not truncated.
	for _, pid := range []int{0, -1, 1 << 32} {
		if _, err := seccompProgram(pid, false, false); err == nil {
			t.Errorf("pid %d accepted", pid)
		}
	}
}

// seccompData is struct seccomp_data for amd64 as golang.org/x/net/bpf's
// VM reads it: the VM loads words big-endian, so each little-endian word
// the kernel would load at an offset is stored there big-endian.
func seccompData(archID, nr uint32, args [6]uint64) []byte {
	b := make([]byte, offArgs+8*6)
	be := binary.BigEndian
	be.PutUint32(b[offNr:], nr)
	be.PutUint32(b[offArch:], archID)
	for i, a := range args {
		be.PutUint32(b[offArgs+8*i:], uint32(a))
		be.PutUint32(b[offArgs+8*i+4:], uint32(a>>32))
	}
	return b
}

// policyDecision is what the allow-lists say of a call: the reference the
// programs are checked against.
func policyDecision(entries map[uint32]allowedSyscall, enosys map[uint32]bool, pid int, archID, nr uint32, args [6]uint64) uint32 {
	switch {
	case archID != unix.AUDIT_ARCH_X86_64:
		return seccompEPERM
	case nr >= x32Bit || enosys[nr]:
		return seccompNoSys
	}
	s, ok := entries[nr]
	if !ok {
		return seccompEPERM
	}
	if s.conds == nil {
		return seccompAllow
	}
	for _, set := range s.conds {
		holds := true
		for _, c := range set {
			v := c.value
			if s.name == "tgkill" && c.arg == 0 {
				v = uint64(pid)
			}
			a := args[c.arg]
			if c.bitsSet && a&v != v || !c.bitsSet && a != v {
				holds = false
			}
		}
		if holds {
			return seccompAllow
		}
	}
	return seccompEPERM
}

// storedFilter is a stored program in x/net/bpf's VM, with what the
// allow-lists say of each call.
type storedFilter struct {
	cache, dirs bool
	pid         int
	vm          *bpf.VM
	entries     map[uint32]allowedSyscall
	enosys      map[uint32]bool
	nrs         []uint32 // every call the lists name
	values      []uint64 // condition values, their near misses, call numbers
}

func loadStoredFilter(t testing.TB, pid int, cache, dirs bool) *storedFilter {
	t.Helper()
	prog, err := seccompProgram(pid, cache, dirs)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]bpf.RawInstruction, len(prog))
	for i, in := range prog {
		raw[i] = bpf.RawInstruction{Op: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	insns, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("the program has instructions x/net/bpf does not know")
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatal(err)
	}
	f := &storedFilter{cache: cache, dirs: dirs, pid: pid, vm: vm, entries: map[uint32]allowedSyscall{}, enosys: map[uint32]bool{}}
	for _, s := range policyEntries(cache, dirs) {
		nr, err := syscallNr(s.name)
		if err != nil {
			t.Fatal(err)
		}
		f.entries[nr] = s
		f.nrs = append(f.nrs, nr)
		for _, set := range s.conds {
			for _, c := range set {
				f.values = append(f.values, c.value, c.value^1, c.value|1<<32, c.value&^(c.value&-c.value))
			}
		}
	}
	for _, name := range enosysSyscalls {
		nr, err := syscallNr(name)
		if err != nil {
			t.Fatal(err)
		}
		f.enosys[nr] = true
		f.nrs = append(f.nrs, nr)
	}
	for _, nr := range f.nrs {
		f.values = append(f.values, uint64(nr), uint64(nr)|1<<32)
	}
	f.values = append(f.values, 0, uint64(pid), uint64(pid)|1<<32, 0x109, 0x11d, 44, ^uint64(0))
	return f
}

// check fails t when the program's decision on the call is not the
// allow-lists' (policyDecision).
func (f *storedFilter) check(t testing.TB, archID, nr uint32, args [6]uint64) {
	t.Helper()
	got, err := f.vm.Run(seccompData(archID, nr, args))
	if err != nil {
		t.Fatal(err)
	}
	if want := policyDecision(f.entries, f.enosys, f.pid, archID, nr, args); uint32(got) != want {
		t.Fatalf("cache %v dirs %v pid %d: call %d%v: program %#x, allow-lists %#x", f.cache, f.dirs, f.pid, nr, args, uint32(got), want)
	}
}

// TestSeccompProgramsDecide runs every prebuilt program (in x/net/bpf's
// VM) on calls made to confuse it and checks each decision against the
// allow-lists: argument values that are other calls' numbers, condition
// values with a bit or a word changed, the pid, every call in the lists,
// clone3, the x32 ABI and a foreign architecture. The calls
// go-seccomp-bpf's assembly let through (see assembleSeccomp) come first.
func TestSeccompProgramsDecide(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for v := range 4 {
		for _, pid := range []int{pidPlaceholder, 23456} {
			f := loadStoredFilter(t, pid, v&1 != 0, v&2 != 0)
			x86 := uint32(unix.AUDIT_ARCH_X86_64)
			f.check(t, x86, unix.SYS_CLONE, [6]uint64{0x109})
			f.check(t, x86, unix.SYS_CLONE, [6]uint64{0x11d})
			f.check(t, x86, unix.SYS_NEWFSTATAT, [6]uint64{3, 0x1000, 0x2000, 44})
			f.check(t, x86, unix.SYS_SENDTO, [6]uint64{1, 0x1000, 10, 0, 234, 16})
			pick := func() uint64 {
				if rng.IntN(4) == 0 {
					return rng.Uint64() >> rng.IntN(64)
				}
				return f.values[rng.IntN(len(f.values))]
			}
			for range 20000 {
				nr := f.nrs[rng.IntN(len(f.nrs))]
				switch rng.IntN(10) {
				case 0:
					nr = rng.Uint32N(512)
				case 1:
					nr |= x32Bit
				}
				var args [6]uint64
				for i := range args {
					args[i] = pick()
				}
				archID := x86
				if rng.IntN(50) == 0 {
					archID = unix.AUDIT_ARCH_I386
				}
				f.check(t, archID, nr, args)
			}
		}
	}
}

// FuzzSeccompDecide: for any call — system call number, six arguments,
// architecture, the Keep's pid — every stored filter decides as the
// allow-lists say (never allows what they refuse, never refuses what
// they allow). The seeds in testdata/fuzz/FuzzSeccompDecide are the calls
// go-seccomp-bpf's assembly let through.
func FuzzSeccompDecide(f *testing.F) {
	x86 := uint32(unix.AUDIT_ARCH_X86_64)
	f.Add(x86, uint32(unix.SYS_TGKILL), uint64(77), uint64(77), uint64(23), uint64(0), uint64(0), uint64(0), uint8(0), uint32(77))
	f.Add(x86, uint32(unix.SYS_FCNTL), uint64(3), uint64(unix.F_SETOWN), uint64(1), uint64(0), uint64(0), uint64(0), uint8(0), uint32(1))
	f.Add(uint32(unix.AUDIT_ARCH_I386), uint32(unix.SYS_READ), uint64(0), uint64(0), uint64(0), uint64(0), uint64(0), uint64(0), uint8(0), uint32(1))
	f.Add(x86, uint32(x32Bit|unix.SYS_READ), uint64(0), uint64(0), uint64(0), uint64(0), uint64(0), uint64(0), uint8(0), uint32(1))
	filters := map[[2]int]*storedFilter{}
	f.Fuzz(func(t *testing.T, archID, nr uint32, a0, a1, a2, a3, a4, a5 uint64, variant uint8, pid uint32) {
		if pid == 0 || pid > 1<<22 { // the kernel's pid_max limit
			pid = 1
		}
		v := int(variant % 4)
		k := [2]int{v, int(pid)}
		sf := filters[k]
		if sf == nil {
			sf = loadStoredFilter(t, int(pid), v&1 != 0, v&2 != 0)
			if len(filters) < 64 {
				filters[k] = sf
			}
		}
		sf.check(t, archID, nr, [6]uint64{a0, a1, a2, a3, a4, a5})
	})
}

// kernelArgCases are calls whose argument tests the filter decides and
// that harm nothing when allowed (a bad descriptor, a zero-length send, a
// signal to no thread): argument values are condition values, their near
// misses and system call numbers, so that a program confusing them would
// show it; first the calls go-seccomp-bpf's program let through. Deterministic: the probe in the Keep and the test that checks
// its outcomes make the same list.
func kernelArgCases() [][7]uint64 {
	rng := rand.New(rand.NewPCG(3, 4))
	var values []uint64
	for _, s := range policyEntries(false, false) {
		nr, _ := syscallNr(s.name)
		values = append(values, uint64(nr), uint64(nr)|1<<32)
		for _, set := range s.conds {
			for _, c := range set {
				values = append(values, c.value, c.value^1, c.value|1<<32)
			}
		}
	}
	values = append(values, 0, 1, 44, 234, 0x109)
	pick := func() uint64 { return values[rng.IntN(len(values))] }
	// own picks the call's own condition values for its argument half of
	// the time, so that both sides of every test are reached.
	own := func(name string, arg uint32) uint64 {
		var mine []uint64
		for _, s := range policyEntries(false, false) {
			for _, set := range s.conds {
				for _, c := range set {
					if s.name == name && c.arg == arg {
						mine = append(mine, c.value)
					}
				}
			}
		}
		if len(mine) == 0 || rng.IntN(2) == 0 {
			return pick()
		}
		return mine[rng.IntN(len(mine))]
	}
	const badFD = 999 // below RLIMIT_NOFILE, never open in the Keep
	// First the calls go-seccomp-bpf's program let through (see
	// assembleSeccomp) that are harmless to make.
	cases := [][7]uint64{
		{unix.SYS_NEWFSTATAT, badFD, 0, 0, 44, 0},
		{unix.SYS_SENDTO, 1, 0, 0, 0, 234, 16},
	}
	for range 2000 {
		var c [7]uint64
		switch rng.IntN(5) {
		case 0:
			c = [7]uint64{unix.SYS_FCNTL, badFD, own("fcntl", 1), pick()}
		case 1:
			c = [7]uint64{unix.SYS_IOCTL, badFD, own("ioctl", 1), 0}
		case 2: // fd 1 too: it passes tgkill's pid test
			c = [7]uint64{unix.SYS_SENDTO, []uint64{badFD, 1}[rng.IntN(2)], 0, 0, pick(), own("sendto", 4), pick()}
		case 3: // the path argument is filled in by the probe
			c = [7]uint64{unix.SYS_NEWFSTATAT, badFD, 0, 0, own("newfstatat", 3), pick()}
		case 4: // tid -1: EINVAL whenever allowed
			c = [7]uint64{unix.SYS_TGKILL, own("tgkill", 0), ^uint64(0), 0, pick()}
		}
		cases = append(cases, c)
	}
	return cases
}

func init() {
	containmentHooks["seccomp-arg-cases"] = func(string) string {
		var st unix.Stat_t
		path := []byte("x\x00")
		var out []string
		for _, c := range kernelArgCases() {
			if c[0] == unix.SYS_NEWFSTATAT {
				c[2] = uint64(uintptr(unsafe.Pointer(&path[0])))
				c[3] = uint64(uintptr(unsafe.Pointer(&st)))
			}
			_, _, e := unix.RawSyscall6(uintptr(c[0]), uintptr(c[1]), uintptr(c[2]), uintptr(c[3]), uintptr(c[4]), uintptr(c[5]), uintptr(c[6]))
			out = append(out, errnoString(errnoOrNil(e)))
		}
		return strings.Join(out, ",")
	}
}

// TestSeccompArgsOnKernel: in a Keep with every layer, the kernel running
// the installed filter decides each of kernelArgCases as the allow-lists
// do (refused: EPERM; allowed: the call's own error), which also checks
// that the interpreter TestSeccompProgramsDecide uses reads the programs
// as the kernel does.
func TestSeccompArgsOnKernel(t *testing.T) {
	layers, out := runHook(t, "seccomp-arg-cases")
	if !layerOn(layers, LayerSeccomp) || !layerOn(layers, LayerPIDNS) {
		testutil.NeedHost(t, "the Keep has no seccomp filter or no pid namespace of its own (layers %v)", layers)
	}
	f := loadStoredFilter(t, 1, false, false)
	got := strings.Split(out, ",")
	cases := kernelArgCases()
	if len(got) != len(cases) {
		t.Fatalf("%d outcomes for %d calls: %q", len(got), len(cases), out)
	}
	allowed := 0
	for i, c := range cases {
		var args [6]uint64
		copy(args[:], c[1:])
		want := policyDecision(f.entries, f.enosys, 1, unix.AUDIT_ARCH_X86_64, uint32(c[0]), args)
		if (got[i] != "EPERM") != (want == seccompAllow) {
			t.Errorf("call %d%v: the kernel says %s, the allow-lists %#x", c[0], args, got[i], want)
		}
		if got[i] != "EPERM" {
			allowed++
		}
	}
	if allowed == 0 || allowed == len(cases) {
		t.Fatalf("%d of %d calls allowed: the cases do not test both sides", allowed, len(cases))
	}
	t.Logf("%d of %d calls allowed, as the allow-lists say", allowed, len(cases))
}

// pidSlots are the instructions that differ between the programs for two
// pids: the ones that compare tgkill's argument with the pid.
func pidSlots(a, b []unix.SockFilter) ([]int, error) {
	if len(a) != len(b) {
		return nil, fmt.Errorf("programs for two pids differ in length (%d, %d)", len(a), len(b))
	}
	var slots []int
	for i := range a {
		if a[i] == b[i] {
			continue
		}
		if a[i].Code != b[i].Code || a[i].Jt != b[i].Jt || a[i].Jf != b[i].Jf || a[i].K != pidPlaceholder {
			return nil, fmt.Errorf("instruction %d differs beyond the pid: %+v, %+v", i, a[i], b[i])
		}
		slots = append(slots, i)
	}
	if len(slots) == 0 {
		return nil, fmt.Errorf("no instruction holds the pid")
	}
	return slots, nil
}

// syscallNote names the system call a comparison tests for, when the
// value the program last loaded is the system call number.
func syscallNote(insns []bpf.Instruction, i int) string {
	j, ok := insns[i].(bpf.JumpIf)
	if !ok || j.Cond != bpf.JumpEqual {
		return ""
	}
	for k := i - 1; k >= 0; k-- {
		switch in := insns[k].(type) {
		case bpf.LoadAbsolute:
			if name, ok := arch.X86_64.SyscallNumbers[int(j.Val)]; ok && in.Off == offNr {
				return " (" + name + ")"
			}
			return ""
		case bpf.RetConstant:
			// A comparison after a return is reached only by jumps over
			// the block: from comparisons of the call number.
			if name, ok := arch.X86_64.SyscallNumbers[int(j.Val)]; ok {
				return " (" + name + ")"
			}
			return ""
		}
	}
	return ""
}

func writeSeccompPrograms(t *testing.T) {
	var b bytes.Buffer
	b.WriteString(`// Code generated by "go test -run ^TestSeccompPrograms$ -update-seccomp"; DO NOT EDIT.

//go:build linux && amd64

package sandbox

import "golang.org/x/sys/unix"

// seccompPrograms are the Keep's filters for linux/amd64, indexed by
// seccompVariant: the assembly (seccomp_prog_test.go) of allowedSyscalls,
// cacheSyscalls, dirSyscalls and enosysSyscalls (seccomp_linux.go), each
// instruction with its disassembly.
var seccompPrograms = [4]prebuiltFilter{
`)
	for v := range 4 {
		cache, dirs := v&1 != 0, v&2 != 0
		insns, prog := mustAssemble(t, pidPlaceholder, cache, dirs)
		_, other := mustAssemble(t, 0x5eed1234, cache, dirs)
		slots, err := pidSlots(prog, other)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "\t%d: { // cache %v, dirs %v: %d instructions\n\t\tpidSlots: %#v,\n\t\tinsns: []unix.SockFilter{\n", v, cache, dirs, len(prog), slots)
		for i, in := range prog {
			fmt.Fprintf(&b, "\t\t\t{Code: %#04x, Jt: %d, Jf: %d, K: %#x}, // %d: %v%s\n", in.Code, in.Jt, in.Jf, in.K, i, insns[i], syscallNote(insns, i))
		}
		b.WriteString("\t\t},\n\t},\n")
	}
	b.WriteString("}\n")
	src, err := format.Source(b.Bytes())
	if err != nil {
		t.Fatalf("formatting: %v\n%s", err, b.Bytes())
	}
	if err := os.WriteFile(seccompProgramsFile, src, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", seccompProgramsFile)
}
