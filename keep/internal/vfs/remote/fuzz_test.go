package remote

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// FuzzServe feeds the host side a hostile Keep's byte stream (any
// requests, well-formed or not) against a real host directory.
//
// Property: Serve never panics, returns nil at the end of the stream or
// an error, writes a reply of at most maxBody bytes per request, and
// nothing outside the served directory is read into a reply, changed or
// created: the secret beside it keeps its contents and the directory's
// parent holds only the two.
func FuzzServe(f *testing.F) {
	seeds, err := filepath.Glob("testdata/fuzz/FuzzServe/*")
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seeds in testdata/fuzz/FuzzServe: %v", err)
	}
	dir, secret := testTree(f)
	f.Fuzz(func(t *testing.T, stream []byte) {
		root := hostRoot(t, dir, false)
		defer root.Close()
		var out bytes.Buffer
		Serve(struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(stream), &out}, root)
		for r := out.Bytes(); len(r) > 0; {
			body, err := readMsg(bytes.NewReader(r), nil)
			if err != nil {
				t.Fatalf("Serve wrote a malformed reply: %v", err)
			}
			if bytes.Contains(body, []byte("host secret")) {
				t.Fatal("a reply holds the secret beside the served directory")
			}
			r = r[4+len(body):]
		}
		if b, err := os.ReadFile(secret); err != nil || string(b) != "host secret" {
			t.Fatalf("secret beside the directory: %q, %v", b, err)
		}
		ents, err := os.ReadDir(filepath.Dir(secret))
		if err != nil || len(ents) != 2 {
			t.Fatalf("the directory's parent now holds %v (%v)", ents, err)
		}
	})
}

// FuzzClient answers the Keep's calls with a hostile host's byte stream.
//
// Property: the Keep's side never panics; every call returns within the
// bounds it asked for (a read at most len(p) bytes, a listing at most max
// entries, each a valid name, file types known); every error is an errno,
// ENOTCAPABLE, an integrity error or io.EOF; and once a reply broke the
// protocol every later call fails with EIO.
func FuzzClient(f *testing.F) {
	seeds, err := filepath.Glob("testdata/fuzz/FuzzClient/*")
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seeds in testdata/fuzz/FuzzClient: %v", err)
	}
	f.Fuzz(func(t *testing.T, replies []byte) {
		host, keep := socketPair(t)
		go func() {
			r := bytes.NewReader(replies)
			for {
				if _, err := readMsg(host, nil); err != nil {
					return
				}
				// Each request gets the next framed reply of the input,
				// or the rest of it raw.
				var hdr [4]byte
				if _, err := io.ReadFull(r, hdr[:]); err != nil {
					host.Close()
					return
				}
				host.Write(hdr[:])
				n := int(uint32(hdr[0])<<24 | uint32(hdr[1])<<16 | uint32(hdr[2])<<8 | uint32(hdr[3]))
				b := make([]byte, min(n, r.Len()))
				r.Read(b)
				host.Write(b)
				if len(b) < n {
					host.Close()
					return
				}
			}
		}()
		d, err := Dial(keep, false)
		if err != nil {
			return
		}
		defer d.Close()
		broken := false
		check := func(err error) {
			var e syscall.Errno
			switch {
			case err == nil, errors.Is(err, io.EOF), errors.Is(err, vfs.ErrNotCapable), errors.Is(err, vfs.ErrIntegrity):
			case errors.As(err, &e):
			default:
				t.Fatalf("error %v is no errno", err)
			}
			if broken && !errors.Is(err, syscall.EIO) {
				t.Fatalf("a call after a protocol violation returned %v", err)
			}
			if errors.Is(err, syscall.EIO) {
				broken = true
			}
		}
		o, err := d.Open("f", vfs.OpenOptions{Read: true, Write: true})
		check(err)
		if f, ok := o.(vfs.File); ok && err == nil {
			p := make([]byte, 16)
			n, err := f.Read(p, false)
			check(err)
			if n < 0 || n > len(p) {
				t.Fatalf("read %d of %d", n, len(p))
			}
			n, err = f.ReadAt(p, 3)
			check(err)
			if n < 0 || n > len(p) {
				t.Fatalf("readat %d of %d", n, len(p))
			}
			n, err = f.Write([]byte("abc"), false)
			check(err)
			if n < 0 || n > 3 {
				t.Fatalf("wrote %d of 3", n)
			}
			_, err = f.Seek(0, 0)
			check(err)
			st, err := f.Stat()
			check(err)
			if err == nil && st.Type > 7 {
				t.Fatalf("stat type %d", st.Type)
			}
			check(f.Close())
		}
		ents, err := d.ReadDir(0, 3)
		check(err)
		if len(ents) > 3 {
			t.Fatalf("%d entries of 3", len(ents))
		}
		for _, e := range ents {
			if e.Name != "." && e.Name != ".." && vfs.ValidName(e.Name) != nil || e.Type > 7 {
				t.Fatalf("entry %+v", e)
			}
		}
		target, err := d.Readlink("l")
		check(err)
		if len(target) > vfs.MaxPath {
			t.Fatalf("readlink of %d bytes", len(target))
		}
		check(d.Mkdir("m"))
		_, err = d.StatAt("s", true)
		check(err)
	})
}
