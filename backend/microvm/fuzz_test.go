package microvm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/backend/microvm/internal/channel"
	"github.com/enarx-go/enarx/config"
)

// guestBytes is a channel end whose peer (the Keep) sends a fixed byte
// string; what the host writes is discarded.
type guestBytes struct{ r *bytes.Reader }

func (g guestBytes) Read(p []byte) (int, error)  { return g.r.Read(p) }
func (g guestBytes) Write(p []byte) (int, error) { return len(p), nil }
func (g guestBytes) Close() error                { return nil }

func frameBytes(typ uint8, stream uint32, payload []byte) []byte {
	b := make([]byte, channel.HeaderSize+len(payload))
	b[0] = typ
	binary.BigEndian.PutUint32(b[4:], stream)
	binary.BigEndian.PutUint32(b[8:], uint32(len(payload)))
	copy(b[channel.HeaderSize:], payload)
	return b
}

// FuzzHostSession feeds the host's session a byte string as if a Keep
// (possibly taken over by its workload) sent it. Property: the host never
// panics, ends the channel only cleanly or with a protocol violation, and
// writes compilation cache files only inside the module's cache directory
// and only under names the protocol allows.
func FuzzHostSession(f *testing.F) {
	hello := frameBytes(channel.TypeHello, 0, channel.Encode(channel.Hello{Version: channel.Version, TEE: "none"}))
	put := func(id uint32, name string, body string) []byte {
		return bytes.Join([][]byte{
			frameBytes(channel.TypeOpen, id, channel.Encode(channel.Open{Role: channel.RoleCachePut, Name: name})),
			frameBytes(channel.TypeData, id, []byte(body)),
			frameBytes(channel.TypeFin, id, nil),
		}, nil)
	}
	f.Add(bytes.Join([][]byte{hello, frameBytes(channel.TypeLog, 0, channel.Encode(channel.Log{Level: 0, Msg: "hi", Attrs: []string{"k", "v"}})),
		frameBytes(channel.TypeExit, 0, channel.Encode(channel.Exit{Code: 3}))}, nil))
	f.Add(bytes.Join([][]byte{hello, put(2, "wazero-v1/abc", "code"), put(4, "../../etc/passwd", "x"), put(6, "a/b/c", "x")}, nil))
	f.Add(bytes.Join([][]byte{hello, frameBytes(channel.TypeOpen, 2, channel.Encode(channel.Open{Role: channel.RoleSteward}))}, nil))
	f.Add(bytes.Join([][]byte{hello, hello}, nil))
	f.Fuzz(func(t *testing.T, in []byte) {
		dir := t.TempDir()
		cache := filepath.Join(dir, "cache")
		os.Mkdir(cache, 0o700)
		l := &backend.Launch{Config: &config.Config{}, Options: keepOptionsNoFiles()}
		s := newSession(guestBytes{bytes.NewReader(in)}, l, slog.New(slog.DiscardHandler))
		s.cacheDir = cache
		err := s.mux.Run()
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, channel.ErrProtocol) {
			t.Fatalf("the channel ended with %v", err)
		}
		s.finish()
		s.others.Wait()
		s.outputs.Wait() // cache files being stored
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(cache, p)
			if strings.HasPrefix(rel, "..") || !channel.ValidFileName(filepath.ToSlash(rel)) {
				t.Fatalf("a Keep made the host write %s", p)
			}
			return nil
		})
	})
}

func keepOptionsNoFiles() (o keepOptions) { return o }
