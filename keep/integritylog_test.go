package keep

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// TestIntegrityLogOnce: the sealed volumes' integrity errors are logged
// once per kind (volume, object, reason), other records always, and a
// flood of kinds ends with one line saying the rest are dropped.
func TestIntegrityLogOnce(t *testing.T) {
	var buf bytes.Buffer
	d := &dirs{log: slog.New(slog.NewTextHandler(&buf, nil))}
	l := d.integrityLog()
	if d.integrityLog() != l {
		t.Fatal("integrityLog is not one logger per Keep")
	}
	for i := 0; i < 5; i++ {
		l.Error("sealed volume integrity failure: refusing the data", "volume", "db", "object", "c-1", "chunk", i, "reason", "tampered")
		l.Info("sealed volume opened", "volume", "db")
	}
	l.Error("sealed volume integrity failure: refusing the data", "volume", "db", "object", "c-2", "chunk", 0, "reason", "tampered")
	l.Error("sealed volume integrity failure: refusing the data", "volume", "db", "object", "c-1", "chunk", 0, "reason", "truncated")
	l.With("volume", "other").Error("sealed volume integrity failure", "reason", "tampered")
	l.With("volume", "other").Error("sealed volume integrity failure", "reason", "tampered")
	out := buf.String()
	if n := strings.Count(out, "integrity failure"); n != 4 {
		t.Errorf("%d integrity lines, want 4 (c-1 tampered, c-2 tampered, c-1 truncated, other):\n%s", n, out)
	}
	if n := strings.Count(out, "volume opened"); n != 5 {
		t.Errorf("%d info lines, want all 5", n)
	}
	buf.Reset()
	for i := 0; i < 2*maxKinds; i++ {
		l.Error("sealed volume integrity failure", "volume", "db", "object", fmt.Sprint("x-", i), "reason", "missing")
	}
	out = buf.String()
	if n := strings.Count(out, "integrity failure\""); n > maxKinds || !strings.Contains(out, "further ones are not logged") ||
		strings.Count(out, "further ones are not logged") != 1 {
		t.Errorf("a flood of kinds: %d lines, and the cut-off said %d times", n, strings.Count(out, "further ones are not logged"))
	}
}
