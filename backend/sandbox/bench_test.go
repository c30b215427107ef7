package sandbox

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/enarx-go/enarx/internal/testutil"
)

// BenchmarkSandboxVsNil measures the sandbox backend against the nil
// backend in one run, through the real enarx binary (built CGO_ENABLED=0,
// as released) and the examples, with warm compilation caches:
//
//	go test -run '^$' -bench SandboxVsNil -benchtime 1x ./backend/sandbox
//
// It reports start-up of hello (median of several runs), stdin→stdout and
// TCP echo throughput, and memory (max RSS) per Keep, each as a ratio
// sandbox/nil, and logs one line per figure with its goal.
//
// For throughput, enarx runs in a session of its own with either backend,
// as a Keep serving clients from other sessions does. The sandbox Keep is
// always in its own session (it must not share the caller's controlling
// terminal), and with scheduler autogroups (sched_autogroup_enabled=1) a
// session is also a CPU scheduling group: a nil Keep left in the
// benchmark's own session would share the clients' group and get an
// advantage no deployed Keep has. tcp-same-session-ratio reports that
// configuration too.
func BenchmarkSandboxVsNil(b *testing.B) {
	if testing.Short() {
		b.Skip("builds enarx and moves hundreds of MiB")
	}
	dir := b.TempDir()
	enarx := filepath.Join(dir, "enarx")
	build := exec.Command("go", "build", "-o", enarx, "../../cmd/enarx")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building enarx: %v\n%s", err, out)
	}
	hello := testutil.BuildWasm(b, "../../examples/hello")
	echo := testutil.BuildWasm(b, "../../examples/echo")
	tcpEcho := testutil.BuildWasm(b, "../../examples/tcp-echo")
	backends := []string{"nil", "sandbox"}

	for i := 0; i < b.N; i++ {
		// Start-up: warm the caches, then alternate backends.
		startup := map[string][]time.Duration{}
		rss := map[string]int64{}
		keepRSS, hostRSS := int64(0), int64(0)
		phases := map[string][]time.Duration{}
		for _, be := range backends {
			runEnarx(b, enarx, nil, "run", "--backend", be, hello)
		}
		for r := 0; r < 15; r++ {
			for _, be := range backends {
				t0 := time.Now()
				out, ps := runEnarx(b, enarx, nil, "--log-level", "debug", "run", "--backend", be, hello)
				startup[be] = append(startup[be], time.Since(t0))
				if m := keepRSSRe.FindSubmatch(out); m != nil {
					v, _ := strconv.ParseInt(string(m[1]), 10, 64)
					h, _ := strconv.ParseInt(string(m[2]), 10, 64)
					keepRSS = max(keepRSS, v)
					hostRSS = max(hostRSS, h)
				} else {
					// nil: the process's own peak (it has no children).
					rss[be] = max(rss[be], ps.SysUsage().(*syscall.Rusage).Maxrss)
				}
				for _, ph := range keepPhases {
					if m := ph.re.FindSubmatch(out); m != nil {
						d, _ := time.ParseDuration(string(m[1]))
						phases[ph.name] = append(phases[ph.name], d)
					}
				}
			}
		}
		med := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
		nilStart, sbStart := med(startup["nil"]), med(startup["sandbox"])
		b.ReportMetric(float64(nilStart.Microseconds())/1000, "nil-start-ms")
		b.ReportMetric(float64(sbStart.Microseconds())/1000, "sandbox-start-ms")
		b.ReportMetric(float64((sbStart-nilStart).Microseconds())/1000, "sandbox-extra-start-ms")
		b.ReportMetric(float64(sbStart)/float64(nilStart), "start-ratio")

		// Memory: the nil enarx process vs sandbox host process + Keep.
		b.ReportMetric(float64(rss["nil"])/1024, "nil-rss-MiB")
		b.ReportMetric(float64(keepRSS)/1024, "keep-rss-MiB")
		b.ReportMetric(float64(hostRSS+keepRSS)/1024, "sandbox-total-rss-MiB")
		b.ReportMetric(float64(hostRSS+keepRSS)/float64(rss["nil"]), "rss-ratio")

		// stdin→stdout: median of alternating runs (the machine is shared).
		const pipeBytes = 128 << 20
		medf := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
		tput := map[string]float64{}
		samples := map[string][]float64{}
		for r := 0; r < 7; r++ {
			for _, be := range backends {
				samples[be] = append(samples[be], pipeThroughput(b, enarx, be, echo, pipeBytes))
			}
		}
		for _, be := range backends {
			tput[be] = medf(samples[be])
		}
		b.ReportMetric(tput["nil"], "nil-pipe-MiB/s")
		b.ReportMetric(tput["sandbox"], "sandbox-pipe-MiB/s")
		pipeRatio := tput["sandbox"] / tput["nil"]
		b.ReportMetric(pipeRatio, "pipe-ratio")
		pipeNil, pipeSandbox := tput["nil"], tput["sandbox"]

		// TCP echo, enarx in its own session; then in the benchmark's.
		const tcpBytes = 128 << 20
		tcpRatio := func(ownSession bool) (nilT, sbT float64) {
			samples := map[string][]float64{}
			for r := 0; r < 7; r++ {
				for _, be := range backends {
					samples[be] = append(samples[be], tcpThroughput(b, enarx, be, tcpEcho, tcpBytes, ownSession))
				}
			}
			return medf(samples["nil"]), medf(samples["sandbox"])
		}
		nilT, sbT := tcpRatio(true)
		b.ReportMetric(nilT, "nil-tcp-MiB/s")
		b.ReportMetric(sbT, "sandbox-tcp-MiB/s")
		b.ReportMetric(sbT/nilT, "tcp-ratio")
		nilS, sbS := tcpRatio(false)
		b.ReportMetric(sbS/nilS, "tcp-same-session-ratio")

		b.Logf("start-up of hello (median of 15): nil %.1f ms, sandbox %.1f ms: sandbox extra %.1f ms (goal ≤ 20 ms), ratio %.2f",
			ms(nilStart), ms(sbStart), ms(sbStart-nilStart), float64(sbStart)/float64(nilStart))
		for _, ph := range keepPhases {
			if len(phases[ph.name]) > 0 {
				b.Logf("  sandbox Keep, from its main function: %s after %.1f ms (median)", ph.name, ms(med(phases[ph.name])))
			}
		}
		b.Logf("stdin→stdout (median of 7): nil %.0f MiB/s, sandbox %.0f MiB/s: ratio %.2f (goal ≥ 0.9)", pipeNil, pipeSandbox, pipeRatio)
		b.Logf("TCP echo (median of 7, own sessions): nil %.0f MiB/s, sandbox %.0f MiB/s: ratio %.2f (goal ≥ 0.9)", nilT, sbT, sbT/nilT)
		b.Logf("TCP echo (median of 7, nil in the client's session): nil %.0f MiB/s, sandbox %.0f MiB/s: ratio %.2f", nilS, sbS, sbS/nilS)
		b.Logf("memory (max RSS): nil %.1f MiB; sandbox host %.1f + Keep %.1f = %.1f MiB: ratio %.2f",
			float64(rss["nil"])/1024, float64(hostRSS)/1024, float64(keepRSS)/1024,
			float64(hostRSS+keepRSS)/1024, float64(hostRSS+keepRSS)/float64(rss["nil"]))
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// keepRSSRe finds the Keep's and the sandbox host's own peak RSS. (The
// host's exit status reports the larger of its own and the Keep's.)
var keepRSSRe = regexp.MustCompile(`sandbox Keep exited" max_rss_kib=(\d+) host_max_rss_kib=(\d+)`)

// keepPhases are the Keep's own debug timings (see KeepMain).
var keepPhases = []struct {
	name string
	re   *regexp.Regexp
}{
	{"process confined (namespaces, empty root, no_new_privs, capabilities, Landlock)", regexp.MustCompile(`process_confined_after=(\S+)`)},
	{"workload received and verified", regexp.MustCompile(`received its workload" keep=sandbox after=(\S+)`)},
	{"confined", regexp.MustCompile(`Keep confined" keep=sandbox after=(\S+)`)},
}

func runEnarx(b *testing.B, enarx string, stdin io.Reader, args ...string) ([]byte, *os.ProcessState) {
	b.Helper()
	cmd := exec.Command(enarx, args...)
	cmd.Stdin = stdin
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("enarx %v: %v\n%s", args, err, stderr.Bytes())
	}
	return stderr.Bytes(), cmd.ProcessState
}

func pipeThroughput(b *testing.B, enarx, be, wasm string, n int64) float64 {
	b.Helper()
	cmd := exec.Command(enarx, "run", "--backend", be, wasm)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // see BenchmarkSandboxVsNil
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	go func() {
		for sent := int64(0); sent < n; sent += int64(len(chunk)) {
			in.Write(chunk)
		}
		in.Close()
	}()
	// Time from the first byte back, so that start-up (measured above)
	// does not count against throughput.
	first := make([]byte, len(chunk))
	m, err := io.ReadFull(out, first)
	if err != nil {
		b.Fatalf("%s echo: %v", be, err)
	}
	t0 := time.Now()
	got, _ := io.Copy(io.Discard, out)
	el := time.Since(t0)
	if err := cmd.Wait(); err != nil || got+int64(m) != n {
		b.Fatalf("%s echo: %d of %d bytes, %v", be, got+int64(m), n, err)
	}
	return float64(got) / (1 << 20) / el.Seconds()
}

func tcpThroughput(b *testing.B, enarx, be, wasm string, n int64, ownSession bool) float64 {
	b.Helper()
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := probe.Addr().(*net.TCPAddr).Port
	probe.Close()
	cfg := filepath.Join(b.TempDir(), "Enarx.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("[[files]]\nkind = \"stdin\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \"stderr\"\n"+
		"[[files]]\nname = \"ingest\"\nkind = \"listen\"\nprot = \"tcp\"\naddr = \"127.0.0.1\"\nport = %d\n", port)), 0o600)
	cmd := exec.Command(enarx, "run", "--backend", be, "--wasmcfgfile", cfg, wasm)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: ownSession}
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if bytes.Contains(sc.Bytes(), []byte("listening")) {
			break
		}
	}
	go io.Copy(io.Discard, stderr)
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	t0 := time.Now()
	go func() {
		for sent := int64(0); sent < n; sent += int64(len(chunk)) {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
		c.(*net.TCPConn).CloseWrite()
	}()
	got, _ := io.Copy(io.Discard, c)
	el := time.Since(t0)
	if got != n {
		b.Fatalf("%s tcp echo: %d of %d bytes", be, got, n)
	}
	return float64(n) / (1 << 20) / el.Seconds()
}
