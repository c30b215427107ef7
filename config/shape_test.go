package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// gen repeats f(i) for i = 0, 1, … until the text is at least n bytes.
func gen(n int, f func(i int) string) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		b.WriteString(f(i))
	}
	return b.String()
}

// lines is n lines, line i formatted from format and i.
func lines(n int, format string) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, format+"\n", i)
	}
	return b.String()
}

// parseGuarded parses src, failing the test if Parse does not return
// within a generous bound (a hang guard, not a timing assertion).
func parseGuarded(t *testing.T, src string) (*Config, error) {
	t.Helper()
	type result struct {
		c   *Config
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := Parse("Enarx.toml", []byte(src))
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		return r.c, r.err
	case <-time.After(2 * time.Minute):
		t.Fatalf("Parse of a %d-byte file did not return", len(src))
		return nil, nil
	}
}

// TestParseShapeBounds: a hostile Enarx.toml within maxSize is refused
// by its shape before it is decoded, naming the bound.
func TestParseShapeBounds(t *testing.T) {
	deep := strings.Repeat(".a", maxDepth)
	for _, tc := range []struct{ name, src, want string }{
		{"dotted key", "a" + deep + " = 1\n", "nested more than 16 levels deep"},
		{"dotted env key", "[env]\nA" + deep + " = \"x\"\n", "nested more than 16 levels deep"},
		{"table header", "[a" + deep + "]\n", "table header of more than 16 parts"},
		{"array table header", "[[a" + deep + "]]\n", "table header of more than 16 parts"},
		{"nested arrays", "a = " + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + "\n", "nested more than 16 levels deep"},
		{"nested inline tables", "a = " + strings.Repeat("{b = ", maxDepth) + "1" + strings.Repeat("}", maxDepth) + "\n", "nested more than 16 levels deep"},
		{"keys", lines(maxTableKeys+1, "k%d = 1"), "more than 1024 keys in one table"},
		{"env keys", "[env]\n" + lines(maxTableKeys+1, "K%d = \"\""), "more than 1024 keys in one table"},
		{"inline table keys", "env = {" + strings.Repeat("a = 1, ", maxTableKeys) + "b = 1}\n", "more than 1024 keys in one table"},
		{"values", func() string {
			var b strings.Builder
			for i := 0; i <= maxValues/maxTableKeys; i++ {
				fmt.Fprintf(&b, "[t%d]\n%s", i, lines(maxTableKeys, "k%d = 1"))
			}
			return b.String()
		}(), "more than 16384 keys and array elements"},
		{"args", "args = [" + strings.Repeat(`"",`, maxValues+1) + "]\n", "more than 16384 keys and array elements"},
		{"headers", lines(maxHeaders+1, "[t%d]"), "more than 2048 table headers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseGuarded(t, tc.src)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "Enarx.toml:") {
				t.Fatalf("Parse = %v, want an error naming the file and %q", err, tc.want)
			}
		})
	}
}

// TestParseShapeHostileFullSize: files of (almost) maxSize bytes that
// cost the old parser all the machine's memory (every prefix of a
// 500 000-part dotted key) or minutes of CPU (go-toml's decoder is
// quadratic in the keys of one table) are refused.
func TestParseShapeHostileFullSize(t *testing.T) {
	for name, src := range map[string]string{
		"dotted key": "a" + strings.Repeat(".a", maxSize/2-8) + " = 1\n",
		"keys":       gen(maxSize-32, func(i int) string { return fmt.Sprintf("k%d=1\n", i) }),
		"env keys":   "[env]\n" + gen(maxSize-32, func(i int) string { return fmt.Sprintf("K%d=\"\"\n", i) }),
		"tables":     gen(maxSize-32, func(i int) string { return fmt.Sprintf("[t%d]\n", i) }),
		"subtables":  gen(maxSize-32, func(i int) string { return fmt.Sprintf("[[t.a%d]]\n", i) }),
	} {
		t.Run(name, func(t *testing.T) {
			if len(src) > maxSize {
				t.Fatalf("test input is %d bytes", len(src))
			}
			if _, err := parseGuarded(t, src); err == nil || !strings.Contains(err.Error(), "an Enarx.toml is refused beyond that") {
				t.Fatalf("Parse = %v, want a shape error", err)
			}
		})
	}
}

// TestParseShapeBoundsFitRealFiles: the largest config the other bounds
// allow (maxFiles entries) with every listen field, and paths as deep as
// a real file has, still parse.
func TestParseShapeBoundsFitRealFiles(t *testing.T) {
	var b strings.Builder
	b.WriteString("args = [\"a\", \"b\"]\n[env]\nA = \"1\"\nB.C = \"2\"\n")
	for i := 0; i < maxFiles; i++ {
		fmt.Fprintf(&b, "[[files]]\nkind = \"listen\"\nname = \"l%d\"\nprot = \"tls\"\naddr = \"127.0.0.1\"\nport = %d\nclient_auth = \"none\"\nalpn = [\"h2\", \"http/1.1\"]\n", i, 1000+i)
	}
	_, err := parseGuarded(t, b.String())
	// [env] B.C is a table, not a string: the config check, not the
	// shape check, refuses it.
	if err == nil || !strings.Contains(err.Error(), "env.B: must be a string") {
		t.Fatalf("Parse = %v, want the env type error", err)
	}
	src := strings.Replace(b.String(), "B.C = \"2\"\n", "", 1)
	c, err := parseGuarded(t, src)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Files) != maxFiles || len(c.Files[maxFiles-1].TLS.ALPN) != 2 {
		t.Fatalf("parsed %d files", len(c.Files))
	}
	deep := "files = [{kind = \"connect\", prot = \"tls\", host = \"h\", alpn = [\"x\"]}]\n"
	if _, err := parseGuarded(t, deep); err != nil {
		t.Fatal(err)
	}
}
