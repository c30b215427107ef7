package channel

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// socketpair returns the two ends of a unix stream socketpair, as the host
// and (through QEMU) the Keep see their channel.
func socketpair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "channel")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return conn(fds[0]), conn(fds[1])
}

type pair struct {
	host, guest *Mux
	opened      chan *Stream
	opens       chan Open
	control     chan []byte
}

// newPair connects a host and a guest Mux; streams the host opens arrive
// on p.opened.
func newPair(t testing.TB) *pair {
	t.Helper()
	a, b := socketpair(t)
	p := &pair{opened: make(chan *Stream, 64), opens: make(chan Open, 64), control: make(chan []byte, 64)}
	p.host = New(a, Host, Handler{
		Control: func(typ uint8, payload []byte) error { p.control <- append([]byte{typ}, payload...); return nil },
		Open:    func(s *Stream, o Open) error { p.opened <- s; p.opens <- o; return nil },
	})
	p.guest = New(b, Guest, Handler{
		Control: func(typ uint8, payload []byte) error { p.control <- append([]byte{typ}, payload...); return nil },
		Open:    func(s *Stream, o Open) error { p.opened <- s; p.opens <- o; return nil },
	})
	go p.host.Run()
	go p.guest.Run()
	t.Cleanup(func() { p.host.Close(); p.guest.Close() })
	return p
}

func (p *pair) accept(t testing.TB) (*Stream, Open) {
	t.Helper()
	select {
	case s := <-p.opened:
		return s, <-p.opens
	case <-time.After(10 * time.Second):
		t.Fatal("no stream opened")
	}
	return nil, Open{}
}

func TestControlFrames(t *testing.T) {
	p := newPair(t)
	if err := p.guest.Send(TypeHello, Encode(Hello{Version: Version, TEE: "none"})); err != nil {
		t.Fatal(err)
	}
	got := <-p.control
	var h Hello
	if got[0] != TypeHello || Decode(got[1:], &h) != nil || h.Version != Version || h.TEE != "none" {
		t.Fatalf("got %q", got)
	}
	if err := p.guest.Send(TypeOpen, nil); err == nil {
		t.Error("Send accepted a stream frame type")
	}
}

// TestStreamBothWays moves 8 MiB each way at once over one stream (more
// than 32 windows), and checks both ends see the other's end of stream.
func TestStreamBothWays(t *testing.T) {
	p := newPair(t)
	hs, err := p.host.Open(Open{Role: RoleFile, FD: 3, Peer: "192.0.2.1:4000"})
	if err != nil {
		t.Fatal(err)
	}
	gs, o := p.accept(t)
	if o.Role != RoleFile || o.FD != 3 || o.Peer != "192.0.2.1:4000" {
		t.Fatalf("open %+v", o)
	}
	const size = 8 << 20
	up, down := make([]byte, size), make([]byte, size)
	rand.Read(up)
	rand.Read(down)
	var wg sync.WaitGroup
	var gotUp, gotDown []byte
	var errUp, errDown error
	wg.Add(4)
	go func() { defer wg.Done(); hs.Write(down); hs.CloseWrite() }()
	go func() { defer wg.Done(); gs.Write(up); gs.CloseWrite() }()
	go func() { defer wg.Done(); gotDown, errDown = io.ReadAll(gs) }()
	go func() { defer wg.Done(); gotUp, errUp = io.ReadAll(hs) }()
	wg.Wait()
	if errUp != nil || errDown != nil {
		t.Fatal(errUp, errDown)
	}
	if sha256.Sum256(gotUp) != sha256.Sum256(up) || sha256.Sum256(gotDown) != sha256.Sum256(down) {
		t.Fatalf("data differs: %d/%d bytes", len(gotUp), len(gotDown))
	}
}

// TestFlowControl: a writer whose reader does not read stops after one
// window; TryWrite then says it would block; reading lets it go on.
func TestFlowControl(t *testing.T) {
	p := newPair(t)
	hs, err := p.host.Open(Open{Role: RoleWasm})
	if err != nil {
		t.Fatal(err)
	}
	gs, _ := p.accept(t)
	n, err := hs.TryWrite(make([]byte, 2*Window))
	if n != Window || err != nil {
		t.Fatalf("TryWrite wrote %d, %v; want one window (%d)", n, err, Window)
	}
	if hs.Writable() {
		t.Error("writable with no window left")
	}
	if _, err := hs.TryWrite([]byte{1}); err != ErrWouldBlock {
		t.Fatalf("TryWrite without window: %v", err)
	}
	hs.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := hs.Write([]byte{1}); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write past its deadline: %v", err)
	}
	hs.SetWriteDeadline(time.Time{})
	done := make(chan error, 1)
	go func() { _, err := hs.Write(make([]byte, Window)); done <- err }()
	buf := make([]byte, 2*Window)
	if _, err := io.ReadFull(gs, buf); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestNotifyAndTry: the notify function fires when data arrives, and
// TryRead reports "would block", then data, then the end of the stream.
func TestNotifyAndTry(t *testing.T) {
	p := newPair(t)
	hs, _ := p.host.Open(Open{Role: RoleFile})
	gs, _ := p.accept(t)
	var fired atomic.Int32
	wake := make(chan struct{}, 16)
	gs.SetNotify(func() {
		fired.Add(1)
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	<-wake // SetNotify calls it once
	if gs.Readable() {
		t.Fatal("readable before any data")
	}
	if _, err := gs.TryRead(make([]byte, 4)); err != ErrWouldBlock {
		t.Fatalf("TryRead on an empty stream: %v", err)
	}
	hs.Write([]byte("ping"))
	<-wake
	if !gs.Readable() {
		t.Fatal("not readable after notify")
	}
	pk := make([]byte, 2)
	if n, err := gs.Peek(pk); n != 2 || err != nil || string(pk) != "pi" {
		t.Fatalf("Peek: %q %v", pk[:n], err)
	}
	b := make([]byte, 16)
	if n, err := gs.TryRead(b); err != nil || string(b[:n]) != "ping" {
		t.Fatalf("TryRead: %q %v", b[:n], err)
	}
	hs.CloseWrite()
	<-wake
	if _, err := gs.TryRead(b); err != io.EOF {
		t.Fatalf("TryRead after FIN: %v", err)
	}
}

// TestCloseAndStop: closing one end makes the other read EOF and then fail
// to write; CloseRead alone stops the peer's writes.
func TestCloseAndStop(t *testing.T) {
	p := newPair(t)
	hs, _ := p.host.Open(Open{Role: RoleFile})
	gs, _ := p.accept(t)
	gs.Write([]byte("bye"))
	gs.Close()
	got, err := io.ReadAll(hs)
	if err != nil || string(got) != "bye" {
		t.Fatalf("read %q, %v", got, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := hs.Write([]byte("x"))
		if errors.Is(err, ErrStopped) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes to a closed peer still succeed: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := gs.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}

	h2, _ := p.host.Open(Open{Role: RoleFile})
	g2, _ := p.accept(t)
	g2.CloseRead()
	for {
		if _, err := h2.Write([]byte("x")); errors.Is(err, ErrStopped) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("writes after the peer's CloseRead still succeed")
		}
		time.Sleep(time.Millisecond)
	}
	// The other direction still works.
	h2.CloseWrite()
	g2.Write([]byte("still"))
	g2.CloseWrite()
	if got, err := io.ReadAll(h2); err != nil || string(got) != "still" {
		t.Fatalf("after CloseRead: %q %v", got, err)
	}
}

func TestReset(t *testing.T) {
	p := newPair(t)
	hs, _ := p.host.Open(Open{Role: RoleFile})
	gs, _ := p.accept(t)
	blocked := make(chan error, 1)
	go func() { _, err := gs.Read(make([]byte, 1)); blocked <- err }()
	hs.Reset("dial failed")
	if err := <-blocked; !errors.Is(err, ErrReset) {
		t.Fatalf("Read after reset: %v", err)
	}
	if gs.PeerResetReason() != "dial failed" {
		t.Errorf("reason %q", gs.PeerResetReason())
	}
}

// TestRefusedOpen: an Open the handler refuses is reset, and the channel
// goes on.
func TestRefusedOpen(t *testing.T) {
	a, b := socketpair(t)
	host := New(a, Host, Handler{})
	guest := New(b, Guest, Handler{Open: func(*Stream, Open) error { return errors.New("no such fd") }})
	go host.Run()
	go guest.Run()
	defer host.Close()
	defer guest.Close()
	s, err := host.Open(Open{Role: RoleFile, FD: 99})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, ErrReset) || s.PeerResetReason() != "no such fd" {
		t.Fatalf("read %v (%q)", err, s.PeerResetReason())
	}
}

func TestChannelEndWakesStreams(t *testing.T) {
	p := newPair(t)
	hs, _ := p.host.Open(Open{Role: RoleFile})
	p.accept(t)
	p.host.Open(Open{Role: RoleFile})
	gs, _ := p.accept(t) // a stream with nothing to read
	errs := make(chan error, 2)
	go func() { _, err := gs.Read(make([]byte, 1)); errs <- err }()
	go func() { hs.Write(make([]byte, Window)); _, err := hs.Write(make([]byte, 1)); errs <- err }()
	time.Sleep(20 * time.Millisecond)
	p.host.Close()
	for range 2 {
		select {
		case err := <-errs:
			if err == nil {
				t.Error("an operation succeeded after the channel ended")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a blocked operation was not woken when the channel ended")
		}
	}
}

// rawGuest returns a guest Mux and the raw host end to write frames on.
func rawGuest(t *testing.T, h Handler) (*Mux, net.Conn, chan error) {
	a, b := socketpair(t)
	m := New(b, Guest, h)
	done := make(chan error, 1)
	go func() { done <- m.Run() }()
	t.Cleanup(func() { m.Close(); a.Close() })
	go io.Copy(io.Discard, a)
	return m, a, done
}

func frame(typ uint8, stream uint32, payload []byte) []byte {
	b := make([]byte, HeaderSize+len(payload))
	putHeader(b, Header{Type: typ, Stream: stream, Length: uint32(len(payload))})
	copy(b[HeaderSize:], payload)
	return b
}

// TestViolationsEndTheChannel: each broken frame sequence ends the channel
// with ErrProtocol.
func TestViolationsEndTheChannel(t *testing.T) {
	open := func(id uint32) []byte { return frame(TypeOpen, id, Encode(Open{Role: RoleFile})) }
	cases := map[string][]byte{
		"unknown type":        frame(99, 1, nil),
		"reserved bits":       {TypeFin, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0},
		"control on a stream": frame(TypeHello, 1, nil),
		"stream frame on 0":   frame(TypeData, 0, []byte("x")),
		"oversized data":      append(frame(TypeData, 1, nil)[:8], 0, 1, 0, 0),
		"never opened":        frame(TypeData, 7, []byte("x")),
		"our parity":          open(2),
		"reopen":              append(open(1), open(1)...),
		"not monotonic":       append(open(5), open(3)...),
		"beyond the window": func() []byte {
			b := open(1)
			for range Window/MaxData + 1 {
				b = append(b, frame(TypeData, 1, make([]byte, MaxData))...)
			}
			return b
		}(),
		"window overflow": append(open(1), frame(TypeWindow, 1, []byte{0, 0, 0, 1})...),
		"data after fin":  append(append(open(1), frame(TypeFin, 1, nil)...), frame(TypeData, 1, []byte("x"))...),
		"two fins":        append(append(open(1), frame(TypeFin, 1, nil)...), frame(TypeFin, 1, nil)...),
		"bad open meta":   frame(TypeOpen, 1, []byte(`{"role":"file","evil":1}`)),
		"trailing meta":   frame(TypeOpen, 1, []byte(`{"role":"file"}}`)),
		"short window":    frame(TypeWindow, 1, []byte{1}),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			_, raw, done := rawGuest(t, Handler{Open: func(*Stream, Open) error { return nil }})
			raw.Write(b)
			select {
			case err := <-done:
				if !errors.Is(err, ErrProtocol) {
					t.Fatalf("channel ended with %v; want a protocol violation", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the violation was not detected")
			}
		})
	}
}

// TestLateFramesForClosedStreams are dropped, not violations: the peer may
// have sent them before it saw our close.
func TestLateFramesForClosedStreams(t *testing.T) {
	opened := make(chan *Stream, 1)
	m, raw, done := rawGuest(t, Handler{Open: func(s *Stream, _ Open) error { opened <- s; return nil }})
	raw.Write(frame(TypeOpen, 1, Encode(Open{Role: RoleFile})))
	s := <-opened
	s.Close()
	raw.Write(frame(TypeData, 1, []byte("late")))
	raw.Write(frame(TypeFin, 1, nil))
	if err := m.Send(TypeLog, Encode(Log{Msg: "still alive"})); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("channel ended: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestTooManyStreams(t *testing.T) {
	var mu sync.Mutex
	var streams []*Stream
	_, raw, done := rawGuest(t, Handler{Open: func(s *Stream, _ Open) error {
		mu.Lock()
		streams = append(streams, s)
		mu.Unlock()
		return nil
	}})
	var b bytes.Buffer
	for i := range MaxStreams + 5 {
		b.Write(frame(TypeOpen, uint32(2*i+1), Encode(Open{Role: RoleFile})))
	}
	raw.Write(b.Bytes())
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(streams)
		mu.Unlock()
		if n == MaxStreams {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d streams accepted", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("channel ended: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	mu.Lock()
	defer mu.Unlock()
	if len(streams) != MaxStreams {
		t.Fatalf("%d streams accepted; want %d", len(streams), MaxStreams)
	}
}

// footprint is the memory a stream's unread data holds: its chunks and
// the array of their slice headers.
func (s *Stream) footprint() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := cap(s.chunks) * int(unsafe.Sizeof([]byte(nil)))
	for _, c := range s.chunks {
		n += cap(c)
	}
	return n
}

// TestTinyFramesBounded: a peer that fills a stream's window with tiny
// data frames, on a stream the receiver does not read, makes it hold at
// most a small multiple of the window (not a chunk and its overhead per
// frame: 1-byte frames cost 26 times the window), and what it sent is
// read back intact.
func TestTinyFramesBounded(t *testing.T) {
	patterns := map[string][]int{
		"1 byte":         {1},
		"7 bytes":        {7},
		"half a chunk+1": {smallData/2 + 1},
		"chunk-1":        {smallData - 1},
		"1 and a chunk":  {1, smallData},
		"1 and 32 KiB":   {1, MaxData},
	}
	for name, sizes := range patterns {
		t.Run(name, func(t *testing.T) {
			opened := make(chan *Stream, 1)
			_, raw, done := rawGuest(t, Handler{Open: func(s *Stream, _ Open) error { opened <- s; return nil }})
			want := make([]byte, 0, Window)
			var b bytes.Buffer
			b.Write(frame(TypeOpen, 1, Encode(Open{Role: RoleFile})))
			for i := 0; len(want) < Window; i++ {
				n := min(sizes[i%len(sizes)], Window-len(want))
				p := make([]byte, n)
				for j := range p {
					p[j] = byte(i + j)
				}
				want = append(want, p...)
				b.Write(frame(TypeData, 1, p))
			}
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			payload := b.Bytes()
			go raw.Write(payload)
			s := <-opened
			deadline := time.Now().Add(20 * time.Second)
			for {
				s.mu.Lock()
				held := s.buffered
				s.mu.Unlock()
				if held == Window {
					break
				}
				select {
				case err := <-done:
					t.Fatalf("channel ended: %v", err)
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d bytes arrived of %d", held, Window)
				}
				time.Sleep(2 * time.Millisecond)
			}
			fp := s.footprint()
			runtime.GC()
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(payload) // in both measures
			heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
			t.Logf("a full window of %v-byte frames holds %d bytes (%.2f windows); heap grew by %d", sizes, fp, float64(fp)/Window, heap)
			if fp > 2*Window+2*smallData+8<<10 {
				t.Errorf("the stream holds %d bytes for a %d-byte window", fp, Window)
			}
			if heap > 4*Window {
				t.Errorf("the heap grew by %d bytes for a %d-byte window", heap, Window)
			}
			got := make([]byte, Window)
			if _, err := io.ReadFull(s, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("the stream's bytes differ from what was sent")
			}
		})
	}
}

// TestCloseReadDropsData: a stream whose reading side is closed holds
// nothing the peer sends within its window.
func TestCloseReadDropsData(t *testing.T) {
	opened := make(chan *Stream, 1)
	_, raw, done := rawGuest(t, Handler{Open: func(s *Stream, _ Open) error { opened <- s; return nil }})
	raw.Write(frame(TypeOpen, 1, Encode(Open{Role: RoleFile})))
	s := <-opened
	s.CloseRead()
	var b bytes.Buffer
	for range Window {
		b.Write(frame(TypeData, 1, []byte{'x'}))
	}
	raw.Write(b.Bytes())
	if err := s.m.Send(TypeLog, Encode(Log{Msg: "sync"})); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		s.mu.Lock()
		allow := s.recvAllow
		s.mu.Unlock()
		if allow == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes of the window left", allow)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if fp := s.footprint(); fp != 0 {
		t.Fatalf("a stream closed for reading holds %d bytes", fp)
	}
	select {
	case err := <-done:
		t.Fatalf("channel ended: %v", err)
	default:
	}
}

// TestWriteClosed: WriteClosed is closed when the peer stops reading,
// resets the stream or the channel ends, or we end our direction; not
// when the peer ends its own direction.
func TestWriteClosed(t *testing.T) {
	closed := func(s *Stream) bool {
		select {
		case <-s.WriteClosed():
			return true
		default:
			return false
		}
	}
	wait := func(t *testing.T, s *Stream) {
		t.Helper()
		select {
		case <-s.WriteClosed():
		case <-time.After(10 * time.Second): // a safety net
			t.Fatal("WriteClosed was not closed")
		}
	}
	p := newPair(t)
	for name, end := range map[string]func(g, h *Stream){
		"peer CloseRead": func(g, _ *Stream) { g.CloseRead() },
		"peer Close":     func(g, _ *Stream) { g.Close() },
		"peer Reset":     func(g, _ *Stream) { g.Reset("x") },
		"our CloseWrite": func(_, h *Stream) { h.CloseWrite() },
		"our Close":      func(_, h *Stream) { h.Close() },
	} {
		t.Run(name, func(t *testing.T) {
			hs, _ := p.host.Open(Open{Role: RoleFile})
			gs, _ := p.accept(t)
			ch := hs.WriteClosed()
			end(gs, hs)
			wait(t, hs)
			if hs.WriteClosed() != ch {
				t.Error("WriteClosed returned another channel")
			}
		})
	}
	t.Run("peer CloseWrite", func(t *testing.T) {
		hs, _ := p.host.Open(Open{Role: RoleFile})
		gs, _ := p.accept(t)
		hs.WriteClosed()
		gs.CloseWrite()
		if _, err := hs.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("read %v", err)
		}
		if closed(hs) {
			t.Fatal("WriteClosed closed by the peer's end of its direction")
		}
		if _, err := hs.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("channel end", func(t *testing.T) {
		hs, _ := p.host.Open(Open{Role: RoleFile})
		p.accept(t)
		if closed(hs) {
			t.Fatal("WriteClosed closed on an open stream")
		}
		p.host.Close()
		wait(t, hs)
		// A stream whose channel has ended already.
		if !closed(&Stream{m: p.host}) {
			t.Fatal("WriteClosed not closed after the channel's end")
		}
	})
}

// TestConcurrentOpens: streams opened from several goroutines at once (the
// host opens one per accepted connection on each listen entry, each entry
// on its own goroutine) reach the peer with their Open frames in the order
// of their identifiers, which the peer requires (an identifier below one
// it has seen is a reopened stream, a protocol violation that ends the
// channel). The identifier used to be taken before the frame writer, so
// two Opens could leave in the other order: two connections arriving at
// once on a Keep's two listen entries stopped the Keep.
func TestConcurrentOpens(t *testing.T) {
	const goroutines, each = 8, 120 // 960 streams, within MaxStreams
	for round := range 5 {
		a, b := socketpair(t)
		var accepted atomic.Int32
		host := New(a, Host, Handler{})
		guest := New(b, Guest, Handler{Open: func(*Stream, Open) error { accepted.Add(1); return nil }})
		t.Cleanup(func() { host.Close(); guest.Close() })
		guestEnd := make(chan error, 1)
		go host.Run()
		go func() { guestEnd <- guest.Run() }()
		var wg sync.WaitGroup
		for range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					if _, err := host.Open(Open{Role: RoleFile}); err != nil {
						t.Errorf("round %d: Open: %v", round, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		deadline := time.After(20 * time.Second) // a safety net
		for accepted.Load() < goroutines*each {
			select {
			case err := <-guestEnd:
				t.Fatalf("round %d: the peer ended the channel after %d of %d streams: %v", round, accepted.Load(), goroutines*each, err)
			case <-deadline:
				t.Fatalf("round %d: %d of %d streams arrived", round, accepted.Load(), goroutines*each)
			case <-time.After(time.Millisecond):
			}
		}
		host.Close()
		guest.Close()
	}
}
