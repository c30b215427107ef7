package shim

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2"

	"github.com/enarx-go/enarx/config"
)

// mergeEnv returns the effective Enarx.toml of a task: the image's (raw,
// parsed as cfg; both nil when the image has none) with the OCI spec's env
// ("NAME=value" entries: the image's ENV, then the pod's or ctr's) added to
// its [env]. A name Enarx.toml sets keeps the file's value: the workload
// owner's config, which the Keep's certificate covers, is not overridden by
// the host; the others follow in spec order.
//
// The Keep takes its environment only from Enarx.toml (keep.Options has no
// Env), so the env travels in the config, and the config digest in the
// Keep's certificate is that of the effective file. With no env to add the
// image's bytes are used as they are.
//
// When the image's file has no env key, the [env] table is appended to its
// bytes, which stay a prefix (so line numbers in messages stay right);
// otherwise the document is re-encoded without its env and the merged
// table appended. go-toml's encoder writes map keys sorted, so the [env]
// table is written here, in order.
func mergeEnv(raw []byte, cfg *config.Config, env []string) ([]byte, error) {
	var have []config.EnvVar
	if cfg != nil {
		have = cfg.Env
	}
	set := make(map[string]bool, len(have))
	for _, e := range have {
		set[e.Name] = true
	}
	var extra []config.EnvVar
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" || strings.IndexByte(kv, 0) >= 0 {
			return nil, fmt.Errorf("the container's environment entry %q is not NAME=value (without NUL)", kv)
		}
		if !utf8.ValidString(kv) {
			return nil, fmt.Errorf("the container's environment entry %q is not valid UTF-8, which Enarx.toml's [env] requires", kv)
		}
		if set[name] {
			continue
		}
		set[name] = true
		extra = append(extra, config.EnvVar{Name: name, Value: value})
	}
	if len(extra) == 0 {
		return raw, nil
	}
	var doc []byte
	switch {
	case raw == nil:
		// No Enarx.toml: the default fd table, written out.
		doc = []byte("[[files]]\nkind = \"stdin\"\n\n[[files]]\nkind = \"stdout\"\n\n[[files]]\nkind = \"stderr\"\n")
	case cfg.Env == nil: // no env key (an empty [env] parses to an empty, non-nil Env)
		doc = append([]byte(nil), raw...)
	default:
		var m map[string]any
		if err := toml.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("the image's Enarx.toml: %w", err)
		}
		delete(m, "env")
		b, err := toml.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("re-encoding the image's Enarx.toml with the container's env: %w", err)
		}
		doc = b
	}
	var sb strings.Builder
	sb.Write(doc)
	if len(doc) > 0 && doc[len(doc)-1] != '\n' {
		sb.WriteByte('\n')
	}
	sb.WriteString("\n[env]\n")
	for _, e := range append(append([]config.EnvVar(nil), have...), extra...) {
		sb.WriteString(tomlString(e.Name))
		sb.WriteString(" = ")
		sb.WriteString(tomlString(e.Value))
		sb.WriteByte('\n')
	}
	return []byte(sb.String()), nil
}

// tomlString quotes s as a TOML basic string: '"' and '\' escaped, control
// characters as \uXXXX, everything else as is (s is valid UTF-8).
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
