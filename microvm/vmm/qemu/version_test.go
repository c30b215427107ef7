package qemu

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseVersion(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Version
	}{
		{"QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n", Version{7, 2, 22}},
		{"QEMU emulator version 8.2.2 (Debian 1:8.2.2+ds-0ubuntu1.4)\n", Version{8, 2, 2}},
		{"QEMU emulator version 9.1.0\n", Version{9, 1, 0}},
		{"QEMU emulator version 10.1.0 (qemu-10.1.0-1.fc43)\r\n", Version{10, 1, 0}},
		{"QEMU emulator version 10.0.50 (v10.0.0-1234-gdeadbeef)", Version{10, 0, 50}},
		{"QEMU PC emulator version 0.12.5 (qemu-kvm-0.12.5)", Version{0, 12, 5}},
		{"QEMU emulator version 6.2", Version{6, 2, 0}},
	} {
		got, err := ParseVersion(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "hello", "QEMU emulator version", "QEMU emulator version x.y.z", "version 7", "version 7.2.3.4",
		"version 7..2", "version 99999.1.0", "version -1.2.3", "version 7.2.3a"} {
		if v, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) = %v, want an error", bad, v)
		}
	}
}

func TestVersionGates(t *testing.T) {
	for _, c := range []struct {
		v        Version
		snp, tdx bool
	}{
		{Version{7, 2, 22}, false, false},
		{Version{9, 0, 90}, false, false}, // 9.1 release candidate: not admitted
		{Version{9, 1, 0}, true, false},
		{Version{9, 2, 3}, true, false},
		{Version{10, 0, 50}, true, false},
		{Version{10, 1, 0}, true, true},
		{Version{11, 0, 0}, true, true},
	} {
		i := &Info{Version: c.v}
		if i.SupportsSNP() != c.snp || i.SupportsTDX() != c.tdx {
			t.Errorf("%v: SNP %v TDX %v, want %v %v", c.v, i.SupportsSNP(), i.SupportsTDX(), c.snp, c.tdx)
		}
	}
}

// FuzzParseVersion: ParseVersion never panics; what it accepts has
// components in [0, 9999], prints back to text it parses to the same
// Version, and those numbers are in the input.
func FuzzParseVersion(f *testing.F) {
	f.Add("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n")
	f.Add("QEMU emulator version 10.1.0\n")
	f.Add("version 6.2")
	f.Add("\x00version 1.2.3(")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVersion(s)
		if err != nil {
			return
		}
		for _, n := range []int{v.Major, v.Minor, v.Micro} {
			if n < 0 || n > maxComponent {
				t.Fatalf("ParseVersion(%q) = %v: component out of range", s, v)
			}
		}
		w, err := ParseVersion("QEMU emulator version " + v.String())
		if err != nil || w != v {
			t.Fatalf("round trip of %v: %v, %v", v, w, err)
		}
		if !strings.Contains(s, "version ") {
			t.Fatalf("ParseVersion(%q) accepted input without \"version \"", s)
		}
	})
}

func TestProbeInstalled(t *testing.T) {
	bin := requireQEMU(t)
	info, err := Probe(context.Background(), bin)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	if info.Path != bin || info.Banner != strings.TrimSpace(first) || !strings.Contains(first, "version "+info.Version.String()) {
		t.Errorf("Probe = %+v; --version says %q", info, first)
	}
	t.Logf("%s: QEMU %s, sandbox %v", info.Path, info.Version, info.Sandbox)
}

func TestProbeFakes(t *testing.T) {
	t.Run("NoSandbox", func(t *testing.T) {
		info, err := Probe(context.Background(), fakeQEMU(t, "fake-qemu-9.1"))
		if err != nil {
			t.Fatal(err)
		}
		if info.Version != (Version{9, 1, 2}) || info.Sandbox || !info.SupportsSNP() || info.SupportsTDX() {
			t.Errorf("Probe = %+v", info)
		}
	})
	t.Run("Garbage", func(t *testing.T) {
		_, err := Probe(context.Background(), fakeQEMU(t, "fake-qemu-garbage"))
		if err == nil || !strings.Contains(err.Error(), "no QEMU version") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("Hang", func(t *testing.T) {
		defer func(d time.Duration) { probeTimeout = d }(probeTimeout)
		probeTimeout = 200 * time.Millisecond
		_, err := Probe(context.Background(), fakeQEMU(t, "fake-qemu-hang"))
		if err == nil || !strings.Contains(err.Error(), "no answer within 200ms") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("Missing", func(t *testing.T) {
		_, err := Probe(context.Background(), "/nonexistent/qemu-system-x86_64")
		if err == nil || !strings.Contains(err.Error(), "apt-get install qemu-system-x86") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestLineWriter(t *testing.T) {
	var got []string
	w := newLineWriter(func(l []byte) { got = append(got, string(l)) })
	long := strings.Repeat("x", maxLine+10)
	for _, p := range []string{"a", "b\r\nc\n", "\n", long + "\n", "tail"} {
		w.Write([]byte(p))
	}
	w.flush()
	want := []string{"ab", "c", "", strings.Repeat("x", maxLine), "xxxxxxxxxx", "tail"}
	if len(got) != len(want) {
		t.Fatalf("lines = %q", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d = %q, want %q", i, got[i], want[i])
		}
	}
}

// FuzzLineWriter: the guest's console is untrusted bytes. Whatever they
// are and however they are split into writes, the lines handed on are the
// same, none longer than maxLine or holding a newline, and joined they
// give back the input (less "\r" before a line end).
func FuzzLineWriter(f *testing.F) {
	f.Add([]byte("[    0.000000] Linux version 6.12\r\nhello\n"), uint8(3))
	f.Add(bytes.Repeat([]byte("y"), 2*maxLine+1), uint8(200))
	f.Add([]byte("\r\r\n\n\r"), uint8(1))
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		collect := func(step int) []string {
			var out []string
			w := newLineWriter(func(l []byte) { out = append(out, string(l)) })
			for p := in; len(p) > 0; {
				n := min(step, len(p))
				w.Write(p[:n])
				p = p[n:]
			}
			w.flush()
			return out
		}
		whole := collect(len(in) + 1)
		split := collect(int(chunk) + 1)
		if !slices.Equal(whole, split) {
			t.Fatalf("lines depend on write sizes:\n%q\n%q", whole, split)
		}
		for _, l := range whole {
			if len(l) > maxLine || strings.Contains(l, "\n") {
				t.Fatalf("bad line %q", l)
			}
		}
		want := strings.ReplaceAll(strings.ReplaceAll(string(in), "\r\n", "\n"), "\n", "")
		if got := strings.Join(whole, ""); got != want {
			t.Fatalf("lines %q do not give back %q", whole, in)
		}
	})
}

// TestProbeFileCache: a second process (here: an emptied in-memory cache)
// takes the probe from the file cache without running QEMU; a changed
// binary is probed again.
func TestProbeFileCache(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir := t.TempDir()
	count := filepath.Join(dir, "runs")
	bin := filepath.Join(dir, "qemu-system-x86_64")
	script := "#!/bin/sh\necho x >> " + count + "\necho 'QEMU emulator version 9.2.0'\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	runs := func() int {
		b, _ := os.ReadFile(count)
		return strings.Count(string(b), "x")
	}
	forget := func() {
		probeCache.Lock()
		probeCache.m = nil
		probeCache.Unlock()
	}
	forget()
	info, err := ProbeCached(context.Background(), bin)
	if err != nil || info.Version != (Version{9, 2, 0}) {
		t.Fatalf("%+v %v", info, err)
	}
	first := runs()
	if first == 0 {
		t.Fatal("the fake QEMU never ran")
	}
	forget()
	info, err = ProbeCached(context.Background(), bin)
	if err != nil || info.Version != (Version{9, 2, 0}) || runs() != first {
		t.Fatalf("second probe: %+v %v, QEMU ran %d times (want %d)", info, err, runs(), first)
	}
	// A new binary (other size and time) is probed again.
	os.WriteFile(bin, []byte(script+"echo 'QEMU emulator version 10.1.0'\n"), 0o755)
	os.Chtimes(bin, time.Now().Add(time.Hour), time.Now().Add(time.Hour))
	forget()
	if _, err := ProbeCached(context.Background(), bin); err != nil || runs() == first {
		t.Fatalf("a changed binary was not probed again: %v, runs %d", err, runs())
	}
	forget()
}

// TestProbeSandboxUnanswered: a -sandbox probe that gets no answer (a
// loaded machine, a failed fork) says nothing about seccomp support. It
// must not become "no sandbox", which the probe cache would keep for as
// long as the binary stays the same, running every later VM without
// QEMU's seccomp filter.
func TestProbeSandboxUnanswered(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	defer func(d time.Duration) { probeTimeout = d }(probeTimeout)
	probeTimeout = 300 * time.Millisecond
	dir := t.TempDir()
	slow := filepath.Join(dir, "slow")
	bin := filepath.Join(dir, "qemu-system-x86_64")
	script := "#!/bin/sh\nif [ \"$1\" = -sandbox ] && [ -e " + slow + " ]; then exec sleep 60; fi\necho 'QEMU emulator version 9.2.0'\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(slow, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	forget := func() {
		probeCache.Lock()
		probeCache.m = nil
		probeCache.Unlock()
	}
	forget()
	defer forget()
	info, err := ProbeCached(context.Background(), bin)
	if err == nil || !strings.Contains(err.Error(), "-sandbox") {
		t.Errorf("probe with an unanswered -sandbox run = %+v, %v; want an error", info, err)
	}
	// Once the binary answers, it is found to have the sandbox.
	os.Remove(slow)
	forget()
	info, err = ProbeCached(context.Background(), bin)
	if err != nil || !info.Sandbox {
		t.Errorf("probe after the machine recovered = %+v, %v; want Sandbox", info, err)
	}
}
