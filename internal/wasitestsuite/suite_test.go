package wasitestsuite

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/keep"
)

// suites are the suite's languages this runner covers, each in
// LANG/wasm32-wasip1.
var suites = []string{"rust", "c", "assemblyscript"}

// spec is a test's NAME.json (the suite's legacy form). Unknown keys (the
// newer multi-step "operations") are refused rather than ignored, so that
// a test is never run with part of its spec left out.
type spec struct {
	Args     []string          `json:"args"`
	Env      map[string]string `json:"env"`
	ExitCode *int              `json:"exit_code"`
	Stdout   *string           `json:"stdout"`
	// Root is a directory relative to the test's folder, preopened
	// read-write at "/".
	Root string `json:"root"`
}

// suiteTest is one test of the suite.
type suiteTest struct {
	suite, name string
	wasm        string // path of NAME.wasm
	spec        spec
	root        string // absolute path of the root, "" for none
	// fixtures says whether the root holds files the test reads (anything
	// but the placeholder .keep): such a test cannot run on a memory
	// directory, which starts empty.
	fixtures bool
}

// run is one execution: a test on a source, backend and engine.
type run struct {
	test                    *suiteTest
	source, backend, engine string
}

// key is how expectations.txt names the run.
func (r run) key() string {
	return fmt.Sprintf("%s/%s %s %s %s", r.test.suite, r.test.name, r.source, r.backend, r.engine)
}

// moduleRoot is the directory holding go.mod, above the test's directory.
func moduleRoot(t *testing.T) string {
	root, err := testutil.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// suiteDir finds the suite: ENARX_WASI_TESTSUITE, else the copy in
// third_party/wasi-testsuite, else ../shared/testdata/wasi-testsuite next
// to the module root.
func suiteDir(t *testing.T) string {
	if d := os.Getenv("ENARX_WASI_TESTSUITE"); d != "" {
		return d
	}
	root := moduleRoot(t)
	if d := filepath.Join(root, "third_party", "wasi-testsuite"); dirExists(d) {
		return d
	}
	return filepath.Join(root, "..", "shared", "testdata", "wasi-testsuite")
}

func dirExists(d string) bool {
	st, err := os.Stat(d)
	return err == nil && st.IsDir()
}

// missing gives up on a suite that is not here: skip, or fail under CI.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	testutil.NeedHost(t, "the WASI test suite: "+format+"; scripts/vendor-wasi-testsuite re-creates third_party/wasi-testsuite, "+
		"or set ENARX_WASI_TESTSUITE to a copy laid out as LANG/wasm32-wasip1/", args...)
}

// loadSuite reads every test of every suite under dir.
func loadSuite(t *testing.T, dir string) []*suiteTest {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		missing(t, "%s is not there (%v)", dir, err)
	}
	var tests []*suiteTest
	var noModule []string
	for _, s := range suites {
		sd := filepath.Join(dir, s, "wasm32-wasip1")
		ents, err := os.ReadDir(sd)
		if err != nil {
			missing(t, "%v", err)
		}
		names := map[string]bool{}
		for _, e := range ents {
			n := e.Name()
			if strings.HasSuffix(n, ".wasm") {
				names[strings.TrimSuffix(n, ".wasm")] = true
			} else if strings.HasSuffix(n, ".json") && n != "manifest.json" {
				names[strings.TrimSuffix(n, ".json")] = true
			}
		}
		for n := range names {
			st := &suiteTest{suite: s, name: n, wasm: filepath.Join(sd, n+".wasm")}
			if _, err := os.Stat(st.wasm); err != nil {
				noModule = append(noModule, s+"/"+n)
				continue
			}
			if b, err := os.ReadFile(filepath.Join(sd, n+".json")); err == nil {
				d := json.NewDecoder(bytes.NewReader(b))
				d.DisallowUnknownFields()
				if err := d.Decode(&st.spec); err != nil {
					t.Fatalf("%s/%s.json: %v (this runner knows args, env, exit_code, stdout and root)", s, n, err)
				}
			} else if !os.IsNotExist(err) {
				t.Fatal(err)
			}
			if st.spec.Root != "" {
				st.root = filepath.Join(sd, st.spec.Root)
				fx, err := hasFixtures(st.root)
				if err != nil {
					t.Fatalf("%s/%s: root: %v", s, n, err)
				}
				st.fixtures = fx
			}
			tests = append(tests, st)
		}
	}
	if len(noModule) > 0 {
		sort.Strings(noModule)
		missing(t, "%s holds specs without their .wasm modules (%d, e.g. %s)", dir, len(noModule), noModule[0])
	}
	if len(tests) == 0 {
		missing(t, "%s holds no tests", dir)
	}
	sort.Slice(tests, func(i, j int) bool { return tests[i].suite+"/"+tests[i].name < tests[j].suite+"/"+tests[j].name })
	return tests
}

// hasFixtures reports whether root holds anything but the .keep
// placeholder.
func hasFixtures(root string) (bool, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return false, err
	}
	for _, e := range ents {
		if e.Name() != ".keep" {
			return true, nil
		}
	}
	return false, nil
}

// expectation is one line of expectations.txt: the runs its patterns
// match (path.Match on each field of run.key) cannot pass, for reason.
type expectation struct {
	line     int
	patterns [4]string // suite/test, source, backend, engine
	reason   string
	matched  bool
}

func loadExpectations(t *testing.T) []*expectation {
	f, err := os.Open("expectations.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []*expectation
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		pat, reason, ok := strings.Cut(l, ":")
		fields := strings.Fields(pat)
		if !ok || len(fields) != 4 || strings.TrimSpace(reason) == "" {
			t.Fatalf("expectations.txt:%d: want \"SUITE/TEST SOURCE BACKEND ENGINE: reason\", got %q", n, l)
		}
		e := &expectation{line: n, reason: strings.TrimSpace(reason)}
		for i, p := range fields {
			if _, err := path.Match(p, ""); err != nil {
				t.Fatalf("expectations.txt:%d: pattern %q: %v", n, p, err)
			}
			e.patterns[i] = p
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func (e *expectation) match(r run) bool {
	for i, v := range []string{r.test.suite + "/" + r.test.name, r.source, r.backend, r.engine} {
		if ok, _ := path.Match(e.patterns[i], v); !ok {
			return false
		}
	}
	return true
}

// backends are those of nil and sandbox that `enarx platform info` says
// run here. The sandbox needs host features (seccomp, namespaces): without
// them it is left out, and the test fails under CI.
func backends(t *testing.T, bin string) []string {
	out, err := exec.Command(bin, "platform", "info", "--json").Output()
	if err != nil {
		t.Fatalf("enarx platform info --json: %v", err)
	}
	var info struct {
		Backends []struct {
			Backend string `json:"backend"`
			Pass    bool   `json:"pass"`
		} `json:"backends"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("enarx platform info --json: %v", err)
	}
	bs := []string{"nil"}
	for _, b := range info.Backends {
		if b.Backend == "sandbox" {
			if b.Pass {
				return append(bs, "sandbox")
			}
		}
	}
	if testutil.InCI() {
		t.Fatal("CI=true, and the sandbox backend cannot run here (enarx platform info)")
	}
	t.Log("the sandbox backend cannot run here: the suite runs on nil only")
	return bs
}

// enarxToml is the Enarx.toml of a run: stdio, the spec's args and env,
// and the root as a dir entry at "/" (fd 3, where preopen scans look).
func enarxToml(r run, hostRoot string) ([]byte, error) {
	files := []map[string]any{{"kind": "stdin"}, {"kind": "stdout"}, {"kind": "stderr"}}
	switch r.source {
	case "host":
		files = append(files, map[string]any{"name": "root", "kind": "dir", "guest_path": "/", "source": "host", "host_path": hostRoot})
	case "memory":
		files = append(files, map[string]any{"name": "root", "kind": "dir", "guest_path": "/", "source": "memory"})
	case "sealed":
		files = append(files, map[string]any{"name": "root", "kind": "dir", "guest_path": "/", "source": "sealed", "host_path": hostRoot,
			"key": "file:" + filepath.Join(filepath.Dir(hostRoot), "volume.key")})
	}
	doc := map[string]any{"files": files}
	if len(r.test.spec.Args) > 0 {
		doc["args"] = r.test.spec.Args
	}
	if len(r.test.spec.Env) > 0 {
		doc["env"] = r.test.spec.Env
	}
	return toml.Marshal(doc)
}

// outcome is what a run gave, and whether that is what the spec wants.
type outcome struct {
	pass   bool
	detail string
}

// exec runs r through `enarx run` in a fresh copy of its root.
func (r run) exec(t *testing.T, bin, cache string) outcome {
	dir := t.TempDir()
	hostRoot := filepath.Join(dir, "root")
	if r.source == "sealed" {
		// A new, empty volume, keyed by a development key file.
		if err := os.Mkdir(hostRoot, 0o777); err != nil {
			t.Fatal(err)
		}
		os.Chmod(hostRoot, 0o777)
		if err := os.WriteFile(filepath.Join(dir, "volume.key"), testutil.DeterministicBytes(r.key(), 32), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if r.source == "host" {
		if err := os.CopyFS(hostRoot, os.DirFS(r.test.root)); err != nil {
			t.Fatalf("copying the root: %v", err)
		}
		// The suite's copy may be read-only, and the Keep may work as
		// another user than this test (the sandbox's Keep is "nobody"
		// when enarx runs as root: docs/sandbox.md): the test gets a
		// copy anyone may write, as a read-write directory must be
		// writable by the Keep.
		filepath.WalkDir(hostRoot, func(p string, d fs.DirEntry, err error) error {
			if err == nil {
				mode := os.FileMode(0o666)
				if d.IsDir() {
					mode = 0o777
				}
				os.Chmod(p, mode)
			}
			return nil
		})
	}
	cfg, err := enarxToml(r, hostRoot)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "Enarx.toml")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run", "--backend", r.backend, "--engine", r.engine, "--timeout", "2m",
		"--wasmcfgfile", cfgPath, r.test.wasm)
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+cache, "ENARX_BACKEND=", "ENARX_WASMCFGFILE=", "ENARX_ENGINE=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running enarx: %v", err)
	}
	want := 0
	if r.test.spec.ExitCode != nil {
		want = *r.test.spec.ExitCode
	}
	var why []string
	if code != want {
		why = append(why, fmt.Sprintf("exit status %d, want %d", code, want))
	}
	if s := r.test.spec.Stdout; s != nil && stdout.String() != *s {
		why = append(why, fmt.Sprintf("stdout %q, want %q", stdout.String(), *s))
	}
	if len(why) == 0 {
		return outcome{pass: true}
	}
	return outcome{detail: fmt.Sprintf("%s\nstdout: %s\nstderr: %s", strings.Join(why, "; "), tail(stdout.String()), tail(stderr.String()))}
}

// tail shortens s for a failure message: its start (a panic's message)
// and its end (where a backtrace leads).
func tail(s string) string {
	const head, end = 1500, 700
	if len(s) > head+end {
		return s[:head] + "\n…\n" + s[len(s)-end:]
	}
	return s
}

// TestWASITestsuite runs every test of the suite through `enarx run` on
// each source, backend and engine, and checks the outcomes against
// expectations.txt.
func TestWASITestsuite(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the WASI test suite through the enarx binary")
	}
	dir := suiteDir(t)
	tests := loadSuite(t, dir)
	exps := loadExpectations(t)
	bin := testutil.BuildEnarx(t, keep.CheckEngine("wasmtime") == nil)
	bks := backends(t, bin)
	cache := t.TempDir()

	var runs []run
	for _, st := range tests {
		sources := []string{"none"}
		if st.root != "" {
			sources = []string{"host"}
			if !st.fixtures {
				sources = append(sources, "memory", "sealed")
			}
		}
		for _, src := range sources {
			bs := bks
			if src == "sealed" {
				// The sealed source is the same code on every backend
				// (over a host directory): nil only, to keep the suite
				// fast.
				bs = []string{"nil"}
			}
			for _, b := range bs {
				for _, eng := range keep.Engines() {
					runs = append(runs, run{test: st, source: src, backend: b, engine: eng})
				}
			}
		}
	}

	type result struct {
		run
		outcome
		exp *expectation
	}
	results := make([]result, len(runs))
	t.Run("runs", func(t *testing.T) {
		for i, r := range runs {
			t.Run(strings.ReplaceAll(r.key(), " ", "/"), func(t *testing.T) {
				t.Parallel()
				var exp *expectation
				for _, e := range exps {
					if e.match(r) {
						exp = e
						break
					}
				}
				o := r.exec(t, bin, cache)
				results[i] = result{r, o, exp}
				switch {
				case !o.pass && exp == nil:
					t.Errorf("%s failed, and expectations.txt does not list it:\n%s", r.key(), o.detail)
				case o.pass && exp != nil:
					t.Errorf("%s passes now: remove or narrow expectations.txt:%d (%s)", r.key(), exp.line, exp.reason)
				case !o.pass:
					t.Logf("expected failure (expectations.txt:%d: %s):\n%s", exp.line, exp.reason, o.detail)
				}
			})
		}
	})
	// Summary: pass/fail per suite, source, backend and engine.
	type group struct{ pass, fail, expected int }
	groups := map[string]*group{}
	var order []string
	all := true
	for _, r := range results {
		if r.test == nil {
			all = false // not run (-run) or did not finish
			continue
		}
		if r.exp != nil {
			r.exp.matched = true
		}
		k := fmt.Sprintf("%-15s %-7s %-8s %s", r.test.suite, r.source, r.backend, r.engine)
		g := groups[k]
		if g == nil {
			g = &group{}
			groups[k] = g
			order = append(order, k)
		}
		switch {
		case r.pass:
			g.pass++
		case r.exp != nil:
			g.expected++
		default:
			g.fail++
		}
	}
	sort.Strings(order)
	var sum strings.Builder
	fmt.Fprintf(&sum, "%-15s %-7s %-8s %-8s %5s %5s %8s\n", "suite", "source", "backend", "engine", "pass", "fail", "expected")
	for _, k := range order {
		g := groups[k]
		fmt.Fprintf(&sum, "%s %5d %5d %8d\n", k+strings.Repeat(" ", max(0, 41-len(k))), g.pass, g.fail, g.expected)
	}
	t.Logf("WASI test suite through enarx run (%s):\n%s", dir, sum.String())
	// A line may name what this build or host lacks (an engine, the
	// sandbox): only a run of the whole matrix can call it stale. A line
	// naming a test this copy of the suite does not have is not judged.
	if !t.Failed() && all && len(keep.Engines()) == 2 && len(bks) == 2 {
		for _, e := range exps {
			if e.matched {
				continue
			}
			present := false
			for _, st := range tests {
				if ok, _ := path.Match(e.patterns[0], st.suite+"/"+st.name); ok {
					present = true
				}
			}
			if !present {
				t.Logf("expectations.txt:%d names no test of this copy of the suite", e.line)
			} else {
				t.Errorf("expectations.txt:%d matches no run: remove it (%s)", e.line, e.reason)
			}
		}
	}
}
