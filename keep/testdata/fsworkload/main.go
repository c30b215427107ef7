// fsworkload does the file I/O of a small database, as SQLite does it,
// in a preopened directory, and checks every byte it reads back:
//
//	fsworkload DIR write|verify|all
//
// write: a "database" file built by many small writes at scattered
// offsets (pages of 4 KiB written out of order, some rewritten), an
// fsync, close; a rollback journal created, synced and unlinked; a
// temporary file renamed over a second file; a directory of small files;
// and a truncation. verify: reopens everything write made and checks its
// contents, sizes and the directory listing, then lists what is left.
// all: both, in one run. The data is a function of the page number, so
// verify can run in a later Keep (a host or sealed directory keeps it).
//
// It prints "ok" and exits 0, or prints what differed and exits 1.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

const (
	pageSize = 4096
	pages    = 64
	// order is the order pages are written: a stride through the file.
	stride = 37
	files  = 24
)

// page returns the bytes of page n at generation gen.
func page(n, gen int) []byte {
	b := make([]byte, pageSize)
	x := uint32(n*2654435761 + gen*40503 + 1)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	copy(b, fmt.Sprintf("page %d gen %d\n", n, gen))
	return b
}

// gen is the generation page n holds after write: pages divisible by 5
// are rewritten.
func gen(n int) int {
	if n%5 == 0 {
		return 1
	}
	return 0
}

func main() {
	if len(os.Args) != 3 {
		fail(errors.New("usage: fsworkload DIR write|verify|all"))
	}
	dir, mode := os.Args[1], os.Args[2]
	var err error
	switch mode {
	case "write":
		err = write(dir)
	case "verify":
		err = verify(dir)
	case "all":
		if err = write(dir); err == nil {
			err = verify(dir)
		}
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fail(err)
	}
	fmt.Println("ok")
}

func fail(err error) {
	fmt.Println("FAIL:", err)
	os.Exit(1)
}

func write(dir string) error {
	db := filepath.Join(dir, "app.db")
	f, err := os.OpenFile(db, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	// Pages out of order, each in small pieces (a header, then the rest
	// in 512-byte writes), as a pager writes cells.
	for i := 0; i < pages; i++ {
		n := (i * stride) % pages
		b := page(n, 0)
		off := int64(n) * pageSize
		if _, err := f.WriteAt(b[:100], off); err != nil {
			return fmt.Errorf("page %d header: %w", n, err)
		}
		for o := 100; o < pageSize; o += 512 {
			end := min(o+512, pageSize)
			if _, err := f.WriteAt(b[o:end], off+int64(o)); err != nil {
				return fmt.Errorf("page %d at %d: %w", n, o, err)
			}
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync: %w", err)
	}
	// A transaction: the journal holds the old pages, synced; the pages
	// are rewritten in place, synced; the journal is deleted.
	journal := db + "-journal"
	j, err := os.OpenFile(journal, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	for n := 0; n < pages; n += 5 {
		if _, err := j.Write(page(n, 0)); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
	}
	if err := j.Sync(); err != nil {
		return fmt.Errorf("journal fsync: %w", err)
	}
	for n := 0; n < pages; n += 5 {
		if _, err := f.WriteAt(page(n, 1), int64(n)*pageSize); err != nil {
			return fmt.Errorf("rewrite page %d: %w", n, err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync: %w", err)
	}
	if err := j.Close(); err != nil {
		return err
	}
	if err := os.Remove(journal); err != nil {
		return fmt.Errorf("unlink journal: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}

	// Write-then-rename: the old contents are replaced at once.
	cfg := filepath.Join(dir, "settings")
	if err := os.WriteFile(cfg, []byte("old\n"), 0o644); err != nil {
		return err
	}
	tmp := cfg + ".tmp"
	if err := writeSynced(tmp, []byte("version = 2\n")); err != nil {
		return err
	}
	if err := os.Rename(tmp, cfg); err != nil {
		return fmt.Errorf("rename: %w", err)
	}

	// A directory of small files, one removed, one truncated.
	sub := filepath.Join(dir, "blobs")
	if err := os.Mkdir(sub, 0o755); err != nil {
		return err
	}
	for i := 0; i < files; i++ {
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("blob-%02d", i)), blob(i), 0o644); err != nil {
			return err
		}
	}
	if err := os.Remove(filepath.Join(sub, "blob-07")); err != nil {
		return err
	}
	if err := os.Truncate(filepath.Join(sub, "blob-03"), 5); err != nil {
		return fmt.Errorf("truncate: %w", err)
	}
	return nil
}

func writeSynced(name string, b []byte) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func blob(i int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("blob %d;", i)), 10+i*7)
}

func verify(dir string) error {
	db := filepath.Join(dir, "app.db")
	f, err := os.Open(db)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() != pages*pageSize {
		return fmt.Errorf("app.db is %d bytes, want %d", st.Size(), pages*pageSize)
	}
	// Read back in pieces of another size than written.
	got := make([]byte, 0, pages*pageSize)
	buf := make([]byte, 3000)
	for {
		n, err := f.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading app.db at %d: %w", len(got), err)
		}
	}
	if len(got) != pages*pageSize {
		return fmt.Errorf("read %d bytes of app.db, want %d", len(got), pages*pageSize)
	}
	for n := 0; n < pages; n++ {
		if want := page(n, gen(n)); !bytes.Equal(got[n*pageSize:(n+1)*pageSize], want) {
			return fmt.Errorf("page %d differs (starts %q)", n, got[n*pageSize:n*pageSize+16])
		}
	}
	// ReadAt of a span across pages.
	span := make([]byte, 1000)
	if _, err := f.ReadAt(span, 5*pageSize-500); err != nil {
		return fmt.Errorf("pread: %w", err)
	}
	if !bytes.Equal(span, got[5*pageSize-500:5*pageSize+500]) {
		return errors.New("pread across pages differs")
	}
	if _, err := os.Stat(db + "-journal"); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("journal still there: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "settings")); err != nil || string(b) != "version = 2\n" {
		return fmt.Errorf("settings after rename: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "settings.tmp")); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("settings.tmp still there: %v", err)
	}
	sub := filepath.Join(dir, "blobs")
	ents, err := os.ReadDir(sub)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
		if !e.Type().IsRegular() {
			return fmt.Errorf("%s is %v", e.Name(), e.Type())
		}
	}
	var want []string
	for i := 0; i < files; i++ {
		if i != 7 {
			want = append(want, fmt.Sprintf("blob-%02d", i))
		}
	}
	if !slices.Equal(names, want) {
		return fmt.Errorf("blobs lists %q, want %q", names, want)
	}
	for i := 0; i < files; i++ {
		if i == 7 {
			continue
		}
		b, err := os.ReadFile(filepath.Join(sub, fmt.Sprintf("blob-%02d", i)))
		w := blob(i)
		if i == 3 {
			w = w[:5]
		}
		if err != nil || !bytes.Equal(b, w) {
			return fmt.Errorf("blob-%02d: %d bytes, %v", i, len(b), err)
		}
	}
	top, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var tn []string
	for _, e := range top {
		tn = append(tn, e.Name())
	}
	if s := strings.Join(tn, ","); s != "app.db,blobs,settings" {
		return fmt.Errorf("%s lists %s", dir, s)
	}
	return nil
}
