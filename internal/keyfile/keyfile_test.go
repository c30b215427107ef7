package keyfile

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWarnIfExposed(t *testing.T) {
	p := filepath.Join(t.TempDir(), "k.pem")
	if err := os.WriteFile(p, []byte("-----BEGIN PRIVATE KEY-----\nk3ymat3rial\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		mode os.FileMode
		warn bool
	}{
		{0o600, false}, {0o400, false}, {0o640, false}, {0o440, false},
		{0o644, true}, {0o604, true}, {0o660, true}, {0o601, true}, {0o620, true}, {0o666, true},
	} {
		if err := os.Chmod(p, c.mode); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		WarnIfExposed(slog.New(slog.NewTextHandler(&b, nil)), "--key", p)
		out := b.String()
		if got := strings.Contains(out, "level=WARN"); got != c.warn {
			t.Errorf("mode %04o: warned %v, want %v: %q", c.mode, got, c.warn, out)
		}
		if c.warn && !strings.Contains(out, "flag=--key") {
			t.Errorf("mode %04o: warning does not name the flag: %q", c.mode, out)
		}
		if strings.Contains(out, "k3ymat3rial") {
			t.Errorf("mode %04o: the key's content was logged: %q", c.mode, out)
		}
	}
	var b bytes.Buffer
	WarnIfExposed(slog.New(slog.NewTextHandler(&b, nil)), "--key", filepath.Join(t.TempDir(), "missing"))
	if b.Len() != 0 {
		t.Errorf("missing file logged %q", b.String())
	}
}
