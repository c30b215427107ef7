package sandbox

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/keep"
)

// payloadFD returns a dup of f's descriptor, which mapPayload consumes.
func payloadFD(t *testing.T, f *os.File) int {
	t.Helper()
	fd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

func TestMapPayload(t *testing.T) {
	data := []byte("module+config")
	f, err := newPayloadFile()
	if err != nil {
		testutil.NeedHost(t, "no memfd: %v", err)
	}
	defer f.Close()

	// Not yet sealed: the host could still change what the Keep checked.
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if _, err := mapPayload(payloadFD(t, f), int64(len(data))); err == nil || !strings.Contains(err.Error(), "not sealed") {
		t.Fatalf("unsealed memfd: %v", err)
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, payloadSeals); err != nil {
		t.Fatal(err)
	}
	if _, err := mapPayload(payloadFD(t, f), int64(len(data))+1); err == nil || !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("wrong size: %v", err)
	}
	b, err := mapPayload(payloadFD(t, f), int64(len(data)))
	if err != nil || !bytes.Equal(b, data) {
		t.Fatalf("got %q, %v", b, err)
	}
	// The mapping is private: a consumer writing into it changes neither
	// the memfd nor another mapping of it.
	b[0] = 'M'
	again, err := mapPayload(payloadFD(t, f), int64(len(data)))
	if err != nil || !bytes.Equal(again, data) {
		t.Fatalf("after a private write: %q, %v", again, err)
	}
	unix.Munmap(b)
	unix.Munmap(again)

	// A pipe or a regular file is not a sealed memfd.
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	if _, err := mapPayload(payloadFD(t, r), 0); err == nil {
		t.Fatal("accepted a pipe")
	}
}

// TestPrepareLaunchDigestsTheMemfd: with a payload memfd, the digest the
// host announces is that of the module bytes in the sealed memfd, which
// are the module's.
func TestPrepareLaunchDigestsTheMemfd(t *testing.T) {
	wasm := bytes.Repeat([]byte("\x00asm-module-"), 20000) // several buffers
	for _, withMemfd := range []bool{true, false} {
		var f *os.File
		if withMemfd {
			var err error
			if f, err = newPayloadFile(); err != nil {
				testutil.NeedHost(t, "no memfd: %v", err)
			}
			defer f.Close()
		}
		l := &backend.Launch{Workload: keep.Workload{Wasm: wasm, Config: []byte("[[files]]")}, Options: keep.Options{NoCache: true}}
		var hdr launch
		if err := prepareLaunch(l, &hdr, f); err != nil {
			t.Fatal(err)
		}
		if want := digest(wasm); hdr.WasmSHA256 != want {
			t.Fatalf("memfd %v: announced %s, want %s", withMemfd, hdr.WasmSHA256, want)
		}
		if withMemfd {
			seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
			if err != nil || seals&payloadSeals != payloadSeals {
				t.Fatalf("memfd not sealed: %#x %v", seals, err)
			}
			if _, err := fileDigest(f, int64(len(wasm))+100); err == nil {
				t.Fatal("fileDigest hashed past the end of the file")
			}
		}
	}
}

// TestDecodeLaunchChecksMemfdDigests: a payload that differs from the
// digest the header announced is refused — the config by decoding, the
// module by keep.Run, before it compiles it.
func TestDecodeLaunchChecksMemfdDigests(t *testing.T) {
	wasm, cfg := []byte("\x00asm-module"), []byte("[[files]]\nkind = \"null\"\n")
	for _, tamper := range []string{"", "module", "config"} {
		l := &launch{wasm: wasm, config: cfg, HasConfig: true, PayloadFD: true}
		var hdr bytes.Buffer
		if err := l.encode(&hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Len() > 8+maxHeader || bytes.Contains(hdr.Bytes(), wasm) {
			t.Fatal("payloads must not follow a payload_fd header on the socket")
		}
		f, err := newPayloadFile()
		if err != nil {
			testutil.NeedHost(t, "no memfd: %v", err)
		}
		sent, sentCfg := bytes.Clone(wasm), bytes.Clone(cfg)
		switch tamper {
		case "module":
			sent[len(sent)-1] ^= 1
		case "config":
			sentCfg[0] ^= 1
		}
		if err := fillPayloadFile(f, sent, sentCfg); err != nil {
			t.Fatal(err)
		}
		got, err := decodeLaunchWith(&hdr, func(_ *launch, size int64) ([]byte, error) {
			return mapPayload(payloadFD(t, f), size)
		})
		f.Close()
		switch tamper {
		case "config":
			if err == nil || !strings.Contains(err.Error(), "config digest mismatch") {
				t.Fatalf("tampered config: %v", err)
			}
		case "module":
			if err != nil {
				t.Fatal(err)
			}
			if err := runDecoded(got); err == nil || !strings.Contains(err.Error(), "module digest mismatch") {
				t.Fatalf("tampered module: %v", err)
			}
		default:
			if err != nil || !bytes.Equal(got.wasm, wasm) || !bytes.Equal(got.config, cfg) {
				t.Fatalf("got %+v, %v", got, err)
			}
		}
	}
	// Without a memfd to map, a payload_fd message is refused.
	var hdr bytes.Buffer
	(&launch{wasm: wasm, PayloadFD: true}).encode(&hdr)
	if _, err := decodeLaunch(&hdr); err == nil {
		t.Fatal("accepted a payload_fd message with no memfd")
	}
}
