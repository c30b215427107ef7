package channel

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// memRW is a channel end that reads a fixed byte string and discards what
// is written.
type memRW struct{ r *bytes.Reader }

func (m memRW) Read(p []byte) (int, error)  { return m.r.Read(p) }
func (m memRW) Write(p []byte) (int, error) { return len(p), nil }
func (m memRW) Close() error                { return nil }

// FuzzParseHeader: a header is accepted only if it re-encodes to the same
// bytes, its payload bound holds, and control frames (and only they) are on
// stream 0.
func FuzzParseHeader(f *testing.F) {
	f.Add(frame(TypeData, 1, nil))
	f.Add(frame(TypeHello, 0, nil))
	f.Add([]byte{TypeWindow, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v does not wrap ErrProtocol", err)
			}
			return
		}
		var again [HeaderSize]byte
		putHeader(again[:], h)
		if !bytes.Equal(again[:], b[:HeaderSize]) {
			t.Fatalf("accepted %x, which re-encodes as %x", b[:HeaderSize], again)
		}
		if h.Length > MaxPayload || (h.Type == TypeData && h.Length > MaxData) {
			t.Fatalf("accepted a %d-byte payload for type %d", h.Length, h.Type)
		}
		if (h.Stream == 0) != (h.Type < TypeOpen) {
			t.Fatalf("accepted type %d on stream %d", h.Type, h.Stream)
		}
	})
}

// FuzzMux feeds a byte string to the Keep's end of a channel as if the
// host sent it. The Keep's side acts too, deterministically on the
// reading goroutine: each Log frame's payload drives one operation on an
// accepted stream (TryRead, TryWrite, CloseRead, CloseWrite, Close,
// Reset), so window grants, the peer's credit and frames for streams in
// every state are exercised. Property: the Mux never panics, ends with a
// clean end of input or a protocol violation (nothing else), never holds
// more unread bytes on a stream than that stream's window (counting what
// it read but has not granted back yet), nor more than about twice the
// window in memory, however the bytes were framed; its credit stays
// within the window, and it never tracks more than MaxStreams streams nor
// one it closed.
func FuzzMux(f *testing.F) {
	open := func(id uint32, o Open) []byte { return frame(TypeOpen, id, Encode(o)) }
	seed := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	op := func(o, i byte, n uint16) []byte { return frame(TypeLog, 0, []byte{o, i, byte(n >> 8), byte(n)}) }
	f.Add(seed(frame(TypeLaunch, 0, Encode(Launch{Version: Version})), open(1, Open{Role: RoleWasm}),
		frame(TypeData, 1, []byte("\x00asm")), frame(TypeFin, 1, nil)))
	f.Add(seed(open(1, Open{Role: RoleFile, FD: 0}), frame(TypeData, 1, make([]byte, MaxData)),
		frame(TypeWindow, 1, []byte{0, 0, 0, 0}), frame(TypeStop, 1, nil), frame(TypeReset, 1, []byte("x"))))
	f.Add(seed(open(3, Open{Role: RoleFile, FD: 3, Peer: "[::1]:1"}), open(1, Open{Role: RoleCache})))
	f.Add(seed(frame(TypeExitAck, 0, nil), frame(TypeData, 9, []byte("?"))))
	f.Add(seed(open(1, Open{Role: RoleFile}), frame(TypeData, 1, make([]byte, MaxData)), frame(TypeData, 1, make([]byte, MaxData)),
		frame(TypeData, 1, make([]byte, MaxData)), op(0, 0, 65535), op(1, 0, 65535), frame(TypeWindow, 1, []byte{0, 1, 0, 0}),
		frame(TypeData, 1, make([]byte, MaxData)), op(4, 0, 0), frame(TypeData, 1, []byte("late")), frame(TypeWindow, 1, []byte{0, 0, 0, 1})))
	f.Fuzz(func(t *testing.T, in []byte) {
		var streams []*Stream
		buf := make([]byte, 1<<16)
		m := New(memRW{bytes.NewReader(in)}, Guest, Handler{
			Control: func(typ uint8, p []byte) error {
				if typ != TypeLog || len(p) < 4 || len(streams) == 0 {
					return nil
				}
				s := streams[int(p[1])%len(streams)]
				n := int(p[2])<<8 | int(p[3])
				switch p[0] % 7 {
				case 0:
					s.TryRead(buf[:n])
				case 1:
					s.TryWrite(buf[:n])
				case 2:
					s.CloseRead()
				case 3:
					s.CloseWrite()
				case 4:
					s.Close()
				case 5:
					s.Reset("fuzz")
				case 6:
					s.Peek(buf[:n])
				}
				return nil
			},
			Open: func(s *Stream, o Open) error {
				if o.Role == RoleCache {
					return errors.New("refused")
				}
				streams = append(streams, s)
				return nil
			},
		})
		err := m.Run()
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrProtocol) {
			t.Fatalf("the channel ended with %v", err)
		}
		m.mu.Lock()
		tracked := len(m.streams)
		m.mu.Unlock()
		if tracked > MaxStreams {
			t.Fatalf("%d streams tracked (at most %d)", tracked, MaxStreams)
		}
		for _, s := range streams {
			s.mu.Lock()
			held, allowed, consumed, credit, closed := s.buffered, s.recvAllow, s.consumed, s.credit, s.closed
			s.mu.Unlock()
			if held < 0 || allowed < 0 || held+allowed+consumed > Window {
				t.Fatalf("stream %d holds %d bytes, has read %d not granted back, with %d more allowed (window %d)", s.id, held, consumed, allowed, Window)
			}
			if credit < 0 || credit > Window {
				t.Fatalf("stream %d has a credit of %d (window %d)", s.id, credit, Window)
			}
			if fp := s.footprint(); fp > 2*Window+2*smallData+8<<10 {
				t.Fatalf("stream %d holds %d bytes of memory for %d bytes (window %d)", s.id, fp, held, Window)
			}
			m.mu.Lock()
			_, in := m.streams[s.id]
			m.mu.Unlock()
			if closed && in {
				t.Fatalf("stream %d is closed but still tracked", s.id)
			}
		}
	})
}
