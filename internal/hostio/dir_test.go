package hostio

import (
	"bytes"
	"context"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/config"
)

func dirEntry(name string, src config.Source, hostPath, key string) config.File {
	return config.File{Kind: config.KindDir, Name: name, Dir: &config.DirOptions{GuestPath: "/" + name, Source: src, HostPath: hostPath, Key: key}}
}

// TestOpenDir: host and sealed entries get their directory opened
// read-only with O_DIRECTORY and close-on-exec; memory entries get nil.
func TestOpenDir(t *testing.T) {
	d := t.TempDir()
	cfg := &config.Config{Files: []config.File{
		dirEntry("mem", config.SourceMemory, "", ""),
		dirEntry("host", config.SourceHost, d, ""),
		dirEntry("sealed", config.SourceSealed, d, "snp"),
	}}
	files, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(files)
	if files[0] != nil {
		t.Fatalf("memory entry got %v", files[0])
	}
	for _, f := range files[1:] {
		st, err := f.Stat()
		if err != nil || !st.IsDir() {
			t.Fatalf("%v: %v %v", f.Name(), st, err)
		}
		fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
		if err != nil || fl&unix.O_ACCMODE != unix.O_RDONLY || fl&unix.O_DIRECTORY == 0 {
			t.Fatalf("flags %#x %v", fl, err)
		}
		fdfl, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0)
		if err != nil || fdfl&unix.FD_CLOEXEC == 0 {
			t.Fatalf("fd flags %#x %v", fdfl, err)
		}
	}
}

func TestOpenDirErrors(t *testing.T) {
	d := t.TempDir()
	file := filepath.Join(d, "file")
	os.WriteFile(file, nil, 0o600)
	for _, c := range []struct{ path, want string }{
		{filepath.Join(d, "missing"), "no such file or directory"},
		{file, "not a directory"},
	} {
		cfg := &config.Config{Files: []config.File{{Kind: config.KindStdin, Name: "stdin"}, dirEntry("data", config.SourceHost, c.path, "")}}
		_, err := Open(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), `fd 1 (dir "data"): opening host directory `+c.path+": "+c.want) ||
			!strings.Contains(err.Error(), "files[1].host_path") {
			t.Errorf("%s: %v", c.path, err)
		}
	}
}

func TestVolumeKeys(t *testing.T) {
	d := t.TempDir()
	key := bytes.Repeat([]byte{0xA5}, 32)
	good := filepath.Join(d, "good.key")
	os.WriteFile(good, key, 0o600)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	cfg := &config.Config{Files: []config.File{
		dirEntry("a", config.SourceSealed, d, "file:"+good),
		dirEntry("b", config.SourceSealed, d, "file:"+good), // one key, two volumes
		dirEntry("c", config.SourceSealed, d, "snp"),
		dirEntry("h1", config.SourceHost, d, ""),
		dirEntry("h2", config.SourceHost, d, ""),
		dirEntry("m", config.SourceMemory, "", ""),
	}}
	keys, err := VolumeKeys(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || !bytes.Equal(keys["file:"+good], key) {
		t.Fatalf("keys %v", keys)
	}
	out := logs.String()
	if strings.Count(out, "plaintext, untrusted") != 1 || strings.Count(out, "development only") != 1 {
		t.Errorf("want one untrusted-host and one development-key message:\n%s", out)
	}
	if strings.Contains(out, "group or others") {
		t.Errorf("a 0600 key file warned:\n%s", out)
	}
	if strings.Contains(out, hex.EncodeToString(key)) || strings.Contains(strings.ToLower(out), "a5a5") || bytes.Contains(logs.Bytes(), key) {
		t.Errorf("the key is in the log:\n%s", out)
	}

	// No file keys, no host dirs: nothing read, nothing said.
	logs.Reset()
	if keys, err := VolumeKeys(&config.Config{Files: []config.File{dirEntry("m", config.SourceMemory, "", "")}}, log); err != nil || keys != nil || logs.Len() != 0 {
		t.Errorf("memory only: %v %v %q", keys, err, logs.String())
	}

	// A key file others may read is used, with a warning.
	loose := filepath.Join(d, "loose.key")
	os.WriteFile(loose, key, 0o644)
	os.Chmod(loose, 0o644)
	logs.Reset()
	if _, err := VolumeKeys(&config.Config{Files: []config.File{dirEntry("a", config.SourceSealed, d, "file:"+loose)}}, log); err != nil ||
		!strings.Contains(logs.String(), "readable by group or others") {
		t.Errorf("0644 key: %v %q", err, logs.String())
	}

	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"short.key", key[:31], "holds 31 bytes; a volume key file holds exactly 32 raw bytes"},
		{"long.key", append(key, '\n'), "is longer than 32 bytes"},
		{"empty.key", nil, "holds 0 bytes"},
		{"missing.key", nil, "no such file or directory (make one with: head -c 32 /dev/urandom"},
		{"dir.key", nil, "is not a regular file"},
	} {
		p := filepath.Join(d, c.name)
		switch c.name {
		case "missing.key":
		case "dir.key":
			os.Mkdir(p, 0o700)
		default:
			os.WriteFile(p, c.data, 0o600)
		}
		cfg := &config.Config{Files: []config.File{{Kind: config.KindStdin, Name: "stdin"}, dirEntry("a", config.SourceSealed, d, "file:"+p)}}
		keys, err := VolumeKeys(cfg, nil)
		if err == nil || keys != nil || !strings.Contains(err.Error(), `fd 1 (dir "a"): volume key file:`+p) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}
