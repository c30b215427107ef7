package guest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeRoot builds a guest file system root with the given files (contents)
// and directories (a trailing "/"), and symlinks (contents "->TARGET").
func fakeRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if name[len(name)-1] == '/' {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if len(content) > 2 && content[:2] == "->" {
			if err := os.Symlink(content[2:], p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const (
	cpuinfoPlain = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu vme de pse tsc msr hypervisor x2apic sev_guest_x tdx_guestx\n"
	cpuinfoTD    = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vme de pse tsc msr pae hypervisor tdx_guest x2apic\n"
)

// A Keep finds its TEE from the kernel's own record of it, not only from
// the attestation driver's device: a host can make the driver fail to
// start (a TDX host by refusing the MapGPA call for tdx-guest's shared
// quote buffer), and a Keep that then took itself for one outside a TEE
// would trust its host with machine code (the compilation cache).
func TestDetect(t *testing.T) {
	for name, c := range map[string]struct {
		files map[string]string
		want  string
	}{
		"plain VM":                     {map[string]string{"proc/cpuinfo": cpuinfoPlain, "sys/devices/platform/serial8250/": ""}, "none"},
		"empty root":                   {nil, "none"},
		"SNP with its driver":          {map[string]string{"dev/sev-guest": "->/dev/null", "sys/devices/platform/sev-guest/": "", "proc/cpuinfo": cpuinfoPlain}, "snp"},
		"SNP whose driver failed":      {map[string]string{"sys/devices/platform/sev-guest/": "", "proc/cpuinfo": cpuinfoPlain}, "snp"},
		"TD with its driver":           {map[string]string{"dev/tdx_guest": "->/dev/null", "proc/cpuinfo": cpuinfoTD}, "tdx"},
		"TD whose driver failed":       {map[string]string{"proc/cpuinfo": cpuinfoTD}, "tdx"},
		"a regular file is no device":  {map[string]string{"dev/sev-guest": "not a device", "proc/cpuinfo": cpuinfoPlain}, "none"},
		"a file is no platform device": {map[string]string{"sys/devices/platform/sev-guest": "", "proc/cpuinfo": cpuinfoPlain}, "none"},
	} {
		t.Run(name, func(t *testing.T) {
			if got := Detect(fakeRoot(t, c.files)); got != c.want {
				t.Errorf("Detect = %q, want %q", got, c.want)
			}
		})
	}
}

// Once the image's modules are loaded, module loading and kexec are
// switched off for good: either would let root in the guest run kernel
// code that the launch measurement does not cover while the TEE still
// reports the measured image.
func TestLockKernel(t *testing.T) {
	root := fakeRoot(t, map[string]string{
		"proc/sys/kernel/modules_disabled":    "0\n",
		"proc/sys/kernel/kexec_load_disabled": "0\n",
	})
	var early earlyLog
	lockKernel(root, &early)
	for _, f := range []string{"modules_disabled", "kexec_load_disabled"} {
		b, err := os.ReadFile(filepath.Join(root, "proc/sys/kernel", f))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != "1" {
			t.Errorf("%s is %q, want 1", f, b)
		}
	}
	if len(early.records) != 0 {
		t.Errorf("warnings: %+v", early.records)
	}

	// A kernel without module or kexec support has neither file: nothing
	// to disable and nothing to warn about.
	early = earlyLog{}
	lockKernel(fakeRoot(t, map[string]string{"proc/sys/kernel/": ""}), &early)
	if len(early.records) != 0 {
		t.Errorf("warnings for a kernel without the switches: %+v", early.records)
	}
}

// Nothing in the guest runs from its mounted file systems (the compilation
// cache in /tmp is read, its code copied into memory the engine makes
// executable), so every mount is noexec and nosuid, and all but /dev
// nodev: /tmp, which holds what the host sends, used to be exec.
func TestMountFlags(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range mounts {
		seen[m.dst] = true
		if m.flags&unix.MS_NOEXEC == 0 {
			t.Errorf("%s is mounted without MS_NOEXEC", m.dst)
		}
		if m.flags&unix.MS_NOSUID == 0 {
			t.Errorf("%s is mounted without MS_NOSUID", m.dst)
		}
		if m.flags&unix.MS_NODEV == 0 && m.dst != "/dev" {
			t.Errorf("%s is mounted without MS_NODEV", m.dst)
		}
	}
	for _, d := range []string{"/proc", "/sys", "/dev", "/tmp"} {
		if !seen[d] {
			t.Errorf("%s is not among the mounts", d)
		}
	}
}

// recurse overflows the stack holding key (a runtime fatal error, whose
// stacks Go prints whatever GOTRACEBACK says).
//
//go:noinline
func recurse(key [2]uint64) uint64 { return recurse([2]uint64{key[1], key[0]}) + key[0] }

// secretWord is an argument value a traceback would print in hex.
const secretWord = 0x5ec2e75ec2e75ec2

// panicHolding crashes with key as an argument. An array (of more than
// one element) is passed on the stack, where a traceback finds and prints
// it, as it would a key's words.
//
//go:noinline
func panicHolding(key [2]uint64, how string) {
	switch how {
	case "panic":
		panic("guest test panic")
	case "fatal":
		var mu sync.Mutex
		mu.Unlock() // fatal error: sync: unlock of unlocked mutex
	case "overflow":
		recurse(key) // fatal error: stack overflow
	}
	_ = key
}

// An unhandled panic (or fatal error) in the Keep's /init prints its
// message, on the console the host reads, but no goroutine stacks: a
// traceback prints each frame's argument words, which can be words of
// key material. Each case runs in a child process of the test binary,
// started as the kernel starts /init (no GOTRACEBACK), which sets itself
// up as Main does (it execs itself again) and then crashes in a goroutine
// while a frame holds a recognisable argument.
func TestPanicShowsNoStacks(t *testing.T) {
	if how := os.Getenv("ENARX_GUEST_TEST_CRASH"); how != "" {
		if err := limitTraceback(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		if os.Getenv("ENARX_GUEST_TEST_TEE") != "" {
			if err := quietCrashOutput(os.DevNull); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(3)
			}
		}
		debug.SetMaxStack(1 << 20) // "overflow" reaches it quickly
		done := make(chan struct{})
		go func() { panicHolding([2]uint64{secretWord, secretWord}, how); close(done) }()
		<-done
		os.Exit(0)
	}
	for _, c := range []struct {
		how, msg string
		tee      bool
	}{
		{how: "panic", msg: "panic: guest test panic"},
		{how: "fatal", msg: "fatal error: sync: unlock of unlocked mutex"},
		// The runtime's own fatal errors print every stack whatever
		// GOTRACEBACK says: a Keep in a TEE keeps all of it off the
		// console (quietCrashOutput), its message too.
		{how: "overflow", tee: true},
		{how: "panic", tee: true},
	} {
		name := c.how
		if c.tee {
			name += "/tee"
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // hang guard
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestPanicShowsNoStacks$", "-test.count=1")
			// /init has no GOTRACEBACK (it would be the floor of
			// SetTraceback); neither has the child.
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "GOTRACEBACK=") {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			cmd.Env = append(cmd.Env, "ENARX_GUEST_TEST_CRASH="+c.how)
			if c.tee {
				cmd.Env = append(cmd.Env, "ENARX_GUEST_TEST_TEE=1")
			}
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("the child did not crash with the runtime's status 2 (%v):\n%s", err, out)
			}
			if c.tee && len(out) != 0 {
				t.Errorf("a TEE Keep's crash writes %d bytes to the console:\n%s", len(out), out)
			}
			if !strings.Contains(string(out), c.msg) {
				t.Errorf("the crash does not show its message %q:\n%s", c.msg, out)
			}
			for _, leak := range []string{fmt.Sprintf("%x", uint64(secretWord)), "goroutine ", "panicHolding"} {
				if strings.Contains(string(out), leak) {
					t.Errorf("the crash output shows %q:\n%s", leak, out)
				}
			}
		})
	}
}

// A panic that Main recovers (one of its own goroutine, where the
// workload runs) ends with a line on the console, which the host reads.
// A Keep in a TEE shows nothing of a crash there (quietCrashOutput): the
// line says it failed and never the panic's value, which can carry the
// workload's data or words of a key. A Keep outside a TEE (or before it
// knows) shows the value, to diagnose. The panic's value used to reach
// the console whatever the TEE.
func TestRecoveredPanicInTEE(t *testing.T) {
	secret := fmt.Sprintf("%x", uint64(secretWord))
	for _, c := range []struct {
		tee  string
		show bool
	}{{"snp", false}, {"tdx", false}, {"none", true}, {"", true}} {
		t.Run(c.tee, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "console")
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			old := consolePath
			consolePath = path
			defer func() { consolePath = old }()
			func() {
				tee := c.tee
				defer recoverToConsole(&tee)
				panic(fmt.Errorf("workload data %s", secret))
			}()
			out, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(out), "enarx keep: internal error") {
				t.Fatalf("the console shows %q, not that the Keep failed", out)
			}
			if got := strings.Contains(string(out), secret); got != c.show {
				t.Errorf("tee %q: the console shows %q; want the panic's value shown: %v", c.tee, out, c.show)
			}
		})
	}
}
