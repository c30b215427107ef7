package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/config"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = Execute(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

func TestConfigInitAndCheck(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if code, _, e := runCLI(t, "config", "init"); code != 0 {
		t.Fatalf("init: %d %s", code, e)
	}
	got, err := os.ReadFile(filepath.Join(dir, "Enarx.toml"))
	if err != nil || string(got) != config.Template {
		t.Fatalf("init wrote %q, %v", got, err)
	}
	code, _, e := runCLI(t, "config", "init")
	if code != 1 || !strings.Contains(e, `Error: "Enarx.toml" does already exist.`) {
		t.Fatalf("second init: %d %q", code, e)
	}
	code, out, e := runCLI(t, "config", "check")
	if code != 0 {
		t.Fatalf("check: %d %s", code, e)
	}
	for _, want := range []string{"FD_COUNT=3", "FD_NAMES=stdin:stdout:stderr", `0   stdin`} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
}

func TestConfigCheckTable(t *testing.T) {
	p := filepath.Join(t.TempDir(), "w.toml")
	src := "bogus = 1\n[[files]]\nkind = \"null\"\n[[files]]\nkind = \"listen\"\nname = \"l\"\nprot = \"tls\"\naddr = \"::1\"\nalpn = [\"h2\"]\n" +
		"[[files]]\nkind = \"connect\"\nprot = \"tcp\"\nhost = \"127.0.0.1\"\nport = 9\n"
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, e := runCLI(t, "config", "check", p)
	if code != 0 {
		t.Fatalf("check: %d %s", code, e)
	}
	for _, want := range []string{"listen [::1]:443", "client_auth=none alpn=h2", "connect 127.0.0.1:9", "FD_NAMES=null:l:127.0.0.1"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(e, "warning: "+p+":1: bogus: unknown key ignored") {
		t.Errorf("no warning for unknown key: %q", e)
	}
	if err := os.WriteFile(p, []byte("[[files]]\nkind = \"listen\"\nname = \"x\"\nprot = \"udp\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, e = runCLI(t, "config", "check", p)
	if code != 1 || !strings.Contains(e, p+`:4: files[0].prot: "udp" is not allowed; use "tcp" or "tls"`) {
		t.Fatalf("check bad: %d %q", code, e)
	}
}
