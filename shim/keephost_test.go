package shim

import (
	"bytes"
	"testing"
)

// TestLaunchMsgKeepsEmptyConfig: an image's empty /Enarx.toml (a workload
// with no fds at all, whose certificate binds the SHA-256 of no bytes)
// reaches the keep host as an empty config, not as none (the default
// stdin, stdout and stderr, and no config digest). gob sends an empty
// slice as nothing.
func TestLaunchMsgKeepsEmptyConfig(t *testing.T) {
	bundle, spec := bundleWith(t, map[string]string{"main.wasm": wasmMagic, "Enarx.toml": ""}, "/main.wasm")
	w, err := loadWorkload(bundle, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if w.config == nil {
		t.Fatal("the image's empty Enarx.toml was read as none")
	}
	for _, cfg := range [][]byte{nil, w.config, []byte("args = [\"x\"]\n")} {
		var b bytes.Buffer
		if err := writeLaunch(&b, &launchMsg{Wasm: []byte(wasmMagic), Config: cfg, ConfigName: "Enarx.toml"}); err != nil {
			t.Fatal(err)
		}
		m, err := readLaunch(&b)
		if err != nil {
			t.Fatal(err)
		}
		if (m.Config == nil) != (cfg == nil) || !bytes.Equal(m.Config, cfg) {
			t.Errorf("config %q (nil: %v) arrived as %q (nil: %v)", cfg, cfg == nil, m.Config, m.Config == nil)
		}
	}
}
