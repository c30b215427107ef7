package images

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// commands are the images' binaries: the package each Dockerfile builds.
var commands = []string{"steward", "drawbridge"}

// build runs gobuild.sh for ./cmd/name from the repository root with the
// given build cache and returns the binary's SHA-256.
func build(t *testing.T, name, out, gocache string) string {
	t.Helper()
	cmd := exec.Command("sh", "deploy/images/gobuild.sh", "./cmd/"+name, out)
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "GOCACHE="+gocache)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gobuild.sh ./cmd/%s: %v\n%s", name, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// TestReproducibleStaticBuild builds each image's binary twice, once with
// the developer's build cache and once from an empty one in another output
// directory, and requires the same bytes: nothing of the build's paths,
// cache or time enters the binary. It also requires what the distroless
// static base needs: a statically linked executable (no ELF interpreter,
// no dynamic section).
func TestReproducibleStaticBuild(t *testing.T) {
	cache, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		t.Fatalf("go env GOCACHE: %v", err)
	}
	warm := strings.TrimSpace(string(cache))
	cold := t.TempDir()
	for _, name := range commands {
		t.Run(name, func(t *testing.T) {
			a := filepath.Join(t.TempDir(), "a", name)
			b := filepath.Join(t.TempDir(), "b", "other-dir", name)
			sumA := build(t, name, a, warm)
			sumB := build(t, name, b, cold)
			if sumA != sumB {
				t.Fatalf("./cmd/%s is not reproducible: sha256 %s (warm cache) != %s (empty cache, other output path)", name, sumA, sumB)
			}
			t.Logf("./cmd/%s sha256 %s", name, sumA)
			f, err := elf.Open(a)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
					t.Fatalf("./cmd/%s is dynamically linked (%v): the distroless static image has no libc", name, p.Type)
				}
			}
			raw, err := os.ReadFile(a)
			if err != nil {
				t.Fatal(err)
			}
			abs, err := filepath.Abs(filepath.Join("..", ".."))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(raw, []byte(abs)) {
				t.Fatalf("./cmd/%s contains the build path %s (-trimpath lost)", name, abs)
			}
		})
	}
}

// TestDockerfiles ties each Dockerfile to gobuild.sh and to its command: it
// builds with the script, from a Go base image whose minor version is
// go.mod's, and runs the binary it built on a distroless static base as a
// non-root user.
func TestDockerfiles(t *testing.T) {
	gomod, err := os.ReadFile(filepath.Join("..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	goMinor := string(m[1])
	for _, name := range commands {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(name + ".Dockerfile")
			if err != nil {
				t.Fatal(err)
			}
			df := string(b)
			for _, want := range []string{
				"FROM golang:" + goMinor + "-",
				"RUN sh deploy/images/gobuild.sh ./cmd/" + name + " /out/" + name + "\n",
				"FROM gcr.io/distroless/static-debian12:nonroot\n",
				"COPY --from=build /out/" + name + " /usr/local/bin/" + name + "\n",
				"USER 65532:65532\n",
				`ENTRYPOINT ["/usr/local/bin/` + name + `"]`,
			} {
				if !strings.Contains(df, want) {
					t.Errorf("%s.Dockerfile lacks %q", name, want)
				}
			}
			if _, err := os.Stat(filepath.Join("..", "..", "cmd", name)); err != nil {
				t.Errorf("%s.Dockerfile builds ./cmd/%s: %v", name, name, err)
			}
		})
	}
}
