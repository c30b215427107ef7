package remote

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFuzzSeeds records a real session (the script over a
// socketpair) as the fuzz targets' seeds: the Keep's requests for
// FuzzServe, the host's replies for FuzzClient. Run with
// ENARX_WRITE_FUZZ_SEEDS=1 to write them; otherwise it checks that the
// seeds are there.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("ENARX_WRITE_FUZZ_SEEDS") == "" {
		for _, target := range []string{"FuzzServe", "FuzzClient"} {
			if m, _ := filepath.Glob("testdata/fuzz/" + target + "/*"); len(m) == 0 {
				t.Errorf("no seeds for %s", target)
			}
		}
		return
	}
	dir, _ := testTree(t)
	host, keep := socketPair(t)
	var reqs, reps bytes.Buffer
	root := hostRoot(t, dir, false)
	done := make(chan error, 1)
	go func() {
		done <- Serve(struct {
			io.Reader
			io.Writer
		}{io.TeeReader(host, &reqs), io.MultiWriter(host, &reps)}, root)
		host.Close()
	}()
	d, err := Dial(keep, false)
	if err != nil {
		t.Fatal(err)
	}
	script(d)
	d.Close()
	<-done
	write := func(target, name string, b []byte) {
		os.MkdirAll("testdata/fuzz/"+target, 0o755)
		if len(b) > 64<<10 { // the big write: keep seeds small
			b = b[:64<<10]
		}
		if err := os.WriteFile(filepath.Join("testdata/fuzz", target, name), []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The script's first steps (before the big write) whole, and the
	// messages one at a time.
	write("FuzzServe", "session", firstMsgs(reqs.Bytes(), 12))
	write("FuzzClient", "session", firstMsgs(reps.Bytes(), 12))
	write("FuzzServe", "escapes", lastMsgs(reqs.Bytes(), 20))
	write("FuzzClient", "escapes", lastMsgs(reps.Bytes(), 20))
}

func splitMsgs(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= 4 {
		n := int(uint32(b[0])<<24|uint32(b[1])<<16|uint32(b[2])<<8|uint32(b[3])) + 4
		if n > len(b) {
			break
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

func firstMsgs(b []byte, n int) []byte { m := splitMsgs(b); return bytes.Join(m[:min(n, len(m))], nil) }
func lastMsgs(b []byte, n int) []byte {
	m := splitMsgs(b)
	return bytes.Join(m[max(0, len(m)-n):], nil)
}
