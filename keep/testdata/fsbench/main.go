// fsbench is the storage benchmark workload: the same program runs in a
// Keep (GOOS=wasip1) and natively, and times only its file I/O with its
// own clock, so that the ratio compares storage and not process start.
//
//	fsbench DIR OP...
//
// runs each OP in order and prints "OP ns=<nanoseconds>" for each:
//
//	write:MiB   sequential 1 MiB writes of DIR/big (created), then fsync
//	read        sequential 1 MiB reads of DIR/big, checked
//	small:N     create N 1 KiB files in DIR/small, stat each, read each back
//
// Any error or wrong byte fails the run (exit status 1).
package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const block = 1 << 20

func main() {
	if len(os.Args) < 3 {
		fail(fmt.Errorf("usage: fsbench DIR write:MiB|read|small:N..."))
	}
	dir := os.Args[1]
	for _, arg := range os.Args[2:] {
		op, val, _ := strings.Cut(arg, ":")
		n := 0
		if val != "" {
			v, err := strconv.Atoi(val)
			if err != nil {
				fail(fmt.Errorf("%s: %w", arg, err))
			}
			n = v
		}
		var err error
		start := time.Now()
		switch op {
		case "write":
			err = seqWrite(filepath.Join(dir, "big"), n)
		case "read":
			err = seqRead(filepath.Join(dir, "big"))
		case "small":
			err = small(dir, n)
		default:
			err = fmt.Errorf("unknown op %q", op)
		}
		if err != nil {
			fail(fmt.Errorf("%s: %w", arg, err))
		}
		fmt.Printf("%s ns=%d\n", op, time.Since(start).Nanoseconds())
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "fsbench:", err)
	os.Exit(1)
}

// pattern stamps every 4 KiB page of b with its block and page number
// (the rest of the page is left as it is), so that a misplaced, stale or
// missing page is caught on read while the check costs little next to the
// I/O it checks, in wasm as natively.
func pattern(b []byte, blk int) {
	for p := 0; p+8 <= len(b); p += 4096 {
		binary.LittleEndian.PutUint64(b[p:], uint64(blk)<<32|uint64(p/4096)|1<<63)
	}
}

// stamped reports whether b carries pattern(b, blk)'s stamps.
func stamped(b []byte, blk int) bool {
	for p := 0; p+8 <= len(b); p += 4096 {
		if binary.LittleEndian.Uint64(b[p:]) != uint64(blk)<<32|uint64(p/4096)|1<<63 {
			return false
		}
	}
	return true
}

func seqWrite(path string, mib int) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	buf := bytes.Repeat([]byte{0xa5}, block)
	for i := 0; i < mib; i++ {
		pattern(buf, i)
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func seqRead(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, block)
	for i := 0; ; i++ {
		n, err := io.ReadFull(f, buf)
		if err == io.EOF {
			return nil
		}
		if err != nil && err != io.ErrUnexpectedEOF {
			return err
		}
		if !stamped(buf[:n], i) {
			return fmt.Errorf("block %d: wrong data", i)
		}
		if n < block {
			return nil
		}
	}
}

func small(dir string, n int) error {
	sub := filepath.Join(dir, "small")
	if err := os.Mkdir(sub, 0o755); err != nil {
		return err
	}
	data := make([]byte, 1024)
	for i := 0; i < n; i++ {
		pattern(data, i)
		if err := os.WriteFile(filepath.Join(sub, strconv.Itoa(i)), data, 0o644); err != nil {
			return err
		}
	}
	for i := 0; i < n; i++ {
		st, err := os.Stat(filepath.Join(sub, strconv.Itoa(i)))
		if err != nil {
			return err
		}
		if st.Size() != int64(len(data)) {
			return fmt.Errorf("file %d: size %d", i, st.Size())
		}
	}
	for i := 0; i < n; i++ {
		b, err := os.ReadFile(filepath.Join(sub, strconv.Itoa(i)))
		if err != nil {
			return err
		}
		pattern(data, i)
		if !bytes.Equal(b, data) {
			return fmt.Errorf("file %d: wrong data", i)
		}
	}
	return nil
}
