// Package doctest finds the shell blocks of the project's Markdown files
// that are marked runnable, so a test can run them as a reader would, on a
// fresh copy of the repository (see doctest_test.go).
//
// The convention: a line that is exactly
//
//	<!-- doctest -->
//
// immediately followed by a ```sh fence marks that block runnable. The
// blocks of one file run in order in one bash (set -euo pipefail) in the
// root of a fresh copy of the repository where `make build examples` has
// run, with bin/ first on PATH, so README commands (./bin/enarx) and docs
// commands (enarx) both run as written. Commands a block starts in the
// background are stopped when the file's blocks end. Blocks that need
// hardware, network access beyond 127.0.0.1 or run forever are not marked.
//
// It trusts the Markdown it reads (the repository's own files).
package doctest

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// Marker is the line that marks the next ```sh block runnable.
const Marker = "<!-- doctest -->"

// Block is one runnable shell block.
type Block struct {
	Line int    // 1-based line of the opening fence
	Text string // the commands, ending in a newline
}

// Blocks returns the runnable blocks of a Markdown document in order. A
// marker not followed by a ```sh block, or a block never closed, is an
// error: either would silently drop commands from the test.
func Blocks(md []byte) ([]Block, error) {
	var (
		out     []Block
		marked  int // line of a pending marker, 0 if none
		cur     *Block
		sc      = bufio.NewScanner(bytes.NewReader(md))
		lineNum int
	)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		lineNum++
		line := sc.Text()
		switch {
		case cur != nil:
			if strings.TrimSpace(line) == "```" {
				out = append(out, *cur)
				cur = nil
				continue
			}
			cur.Text += line + "\n"
		case strings.TrimSpace(line) == Marker:
			if marked != 0 {
				return nil, fmt.Errorf("line %d: %s follows the one on line %d without a block", lineNum, Marker, marked)
			}
			marked = lineNum
		case marked != 0:
			if strings.TrimSpace(line) != "```sh" {
				return nil, fmt.Errorf("line %d: %s must be followed by a ```sh block, not %q", marked, Marker, line)
			}
			cur = &Block{Line: lineNum}
			marked = 0
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur != nil {
		return nil, fmt.Errorf("line %d: the ```sh block is never closed", cur.Line)
	}
	if marked != 0 {
		return nil, fmt.Errorf("line %d: %s at the end of the file", marked, Marker)
	}
	return out, nil
}

// Script joins a file's blocks into one bash script. Each block is
// announced on stderr as "doctest: NAME:LINE" so a failure can be traced
// to its block.
func Script(name string, blocks []Block) string {
	var b strings.Builder
	b.WriteString("set -euo pipefail\n")
	for _, bl := range blocks {
		fmt.Fprintf(&b, "echo 'doctest: %s:%d' >&2\n", name, bl.Line)
		b.WriteString(bl.Text)
	}
	return b.String()
}
