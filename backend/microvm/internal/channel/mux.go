package channel

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// Side says which end of the channel a Mux is. The host allocates odd
// stream identifiers and the Keep even ones, so both can open streams
// without coordination.
type Side int

// Sides.
const (
	Host Side = iota
	Guest
)

// MaxStreams bounds the streams open at once on one channel; a peer that
// opens more has the extra ones reset.
const MaxStreams = 1024

// maxQueued bounds the small frames the reading goroutine queues for
// sending (window updates, resets). A peer that makes us queue more while
// not reading what we send is broken.
const maxQueued = 4096

// Handler receives what the peer sends outside open streams. Both
// functions run on the goroutine that reads the channel: they must not
// block (in particular they must not write to the channel; use Post).
type Handler struct {
	// Control is called for each control frame. An error ends the
	// channel.
	Control func(typ uint8, payload []byte) error
	// Open is called for each stream the peer opens. An error resets the
	// stream (the channel goes on).
	Open func(s *Stream, o Open) error
}

// Mux is one end of a channel.
type Mux struct {
	rw   io.ReadWriteCloser
	side Side
	h    Handler

	wmu  sync.Mutex // serialises frame writes
	wbuf []byte

	mu      sync.Mutex
	streams map[uint32]*Stream
	next    uint32 // our next stream identifier
	peerMax uint32 // highest identifier the peer opened
	err     error  // why the channel ended
	done    chan struct{}

	qmu     sync.Mutex
	queue   []queued
	qsignal chan struct{}
}

type queued struct {
	typ     uint8
	stream  uint32
	payload []byte
}

// New returns a Mux over rw (a connected byte stream). Call Run to read.
func New(rw io.ReadWriteCloser, side Side, h Handler) *Mux {
	m := &Mux{
		rw: rw, side: side, h: h,
		wbuf:    make([]byte, HeaderSize+MaxPayload),
		streams: make(map[uint32]*Stream),
		done:    make(chan struct{}),
		qsignal: make(chan struct{}, 1),
	}
	if side == Host {
		m.next = 1
	} else {
		m.next = 2
	}
	go m.drainQueue()
	return m
}

// Run reads and dispatches frames until the channel ends, and returns why
// (io.EOF when the peer closed it cleanly between frames).
func (m *Mux) Run() error {
	r := bufio.NewReaderSize(m.rw, 2*(HeaderSize+MaxData))
	hdr := make([]byte, HeaderSize)
	scratch := make([]byte, smallData)
	for {
		h, p, err := readFrame(r, hdr, scratch)
		if err == nil {
			err = m.dispatch(h, p)
		}
		if err != nil {
			m.fail(err)
			return m.Err()
		}
	}
}

// Done is closed when the channel has ended.
func (m *Mux) Done() <-chan struct{} { return m.done }

// Err is why the channel ended (nil while it runs).
func (m *Mux) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// Close ends the channel: every stream fails and rw is closed.
func (m *Mux) Close() error {
	m.fail(net.ErrClosed)
	return nil
}

// fail ends the channel with err (the first reason wins).
func (m *Mux) fail(err error) {
	m.mu.Lock()
	if m.err != nil {
		m.mu.Unlock()
		return
	}
	m.err = err
	close(m.done)
	streams := make([]*Stream, 0, len(m.streams))
	for _, s := range m.streams {
		streams = append(streams, s)
	}
	m.mu.Unlock()
	m.rw.Close()
	for _, s := range streams {
		s.mu.Lock()
		s.signal()
		s.mu.Unlock()
	}
}

// Send writes a control frame. It blocks until the frame is written.
func (m *Mux) Send(typ uint8, payload []byte) error {
	if typ >= TypeOpen {
		return fmt.Errorf("channel: Send of stream frame type %d", typ)
	}
	return m.writeFrame(typ, 0, payload)
}

// Post queues a control frame to be sent without blocking (for Handler
// functions).
func (m *Mux) Post(typ uint8, payload []byte) {
	m.post(typ, 0, payload)
}

func (m *Mux) post(typ uint8, stream uint32, payload []byte) {
	m.qmu.Lock()
	if len(m.queue) >= maxQueued {
		m.qmu.Unlock()
		m.fail(violation("the peer does not read what it makes us send"))
		return
	}
	m.queue = append(m.queue, queued{typ, stream, payload})
	m.qmu.Unlock()
	select {
	case m.qsignal <- struct{}{}:
	default:
	}
}

func (m *Mux) drainQueue() {
	for {
		select {
		case <-m.done:
			return
		case <-m.qsignal:
		}
		for {
			m.qmu.Lock()
			if len(m.queue) == 0 {
				m.queue = nil
				m.qmu.Unlock()
				break
			}
			q := m.queue[0]
			m.queue = m.queue[1:]
			m.qmu.Unlock()
			if m.writeFrame(q.typ, q.stream, q.payload) != nil {
				return
			}
		}
	}
}

// writeFrame writes one frame; a write error ends the channel.
func (m *Mux) writeFrame(typ uint8, stream uint32, payload []byte) error {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	return m.writeFrameLocked(typ, stream, payload)
}

// writeFrameLocked is writeFrame with m.wmu held.
func (m *Mux) writeFrameLocked(typ uint8, stream uint32, payload []byte) error {
	if err := m.Err(); err != nil {
		return err
	}
	if len(payload) > MaxPayload {
		return fmt.Errorf("channel: a %d-byte frame payload is too large", len(payload))
	}
	putHeader(m.wbuf, Header{Type: typ, Stream: stream, Length: uint32(len(payload))})
	n := copy(m.wbuf[HeaderSize:], payload)
	if _, err := m.rw.Write(m.wbuf[:HeaderSize+n]); err != nil {
		err = fmt.Errorf("writing to the channel: %w", err)
		m.fail(err)
		return err
	}
	return nil
}

// Open opens a stream described by o.
func (m *Mux) Open(o Open) (*Stream, error) {
	meta := Encode(o)
	if len(meta) > maxOpenMeta {
		return nil, fmt.Errorf("channel: stream description of %d bytes is too large", len(meta))
	}
	// The identifier is taken and the Open frame written under m.wmu, so
	// that Open frames leave in identifier order whoever opens streams
	// concurrently: the peer takes an Open below the highest identifier
	// it has seen for a reopened stream and ends the channel.
	m.wmu.Lock()
	defer m.wmu.Unlock()
	m.mu.Lock()
	if m.err != nil {
		err := m.err
		m.mu.Unlock()
		return nil, err
	}
	if len(m.streams) >= MaxStreams {
		m.mu.Unlock()
		return nil, fmt.Errorf("channel: %d streams are open", MaxStreams)
	}
	if m.next > 1<<31 {
		m.mu.Unlock()
		return nil, errors.New("channel: stream identifiers exhausted")
	}
	s := newStream(m, m.next)
	m.next += 2
	m.streams[s.id] = s
	m.mu.Unlock()
	if err := m.writeFrameLocked(TypeOpen, s.id, meta); err != nil {
		m.remove(s.id)
		return nil, err
	}
	return s, nil
}

func (m *Mux) remove(id uint32) {
	m.mu.Lock()
	delete(m.streams, id)
	m.mu.Unlock()
}

// peerID reports whether id has the peer's parity.
func (m *Mux) peerID(id uint32) bool {
	if m.side == Host {
		return id%2 == 0
	}
	return id%2 == 1
}

func (m *Mux) dispatch(h Header, p []byte) error {
	if h.Type < TypeOpen {
		if m.h.Control == nil {
			return violation("unexpected control frame type %d", h.Type)
		}
		return m.h.Control(h.Type, p)
	}
	if h.Type == TypeOpen {
		return m.opened(h.Stream, p)
	}
	m.mu.Lock()
	s := m.streams[h.Stream]
	known := m.peerID(h.Stream) && h.Stream <= m.peerMax || !m.peerID(h.Stream) && h.Stream < m.next
	m.mu.Unlock()
	if s == nil {
		if known {
			return nil // a stream that was closed here; late frames are dropped
		}
		return violation("frame type %d for stream %d, which was never opened", h.Type, h.Stream)
	}
	switch h.Type {
	case TypeData:
		return s.onData(p)
	case TypeWindow:
		return s.onWindow(uint32(p[0])<<24 | uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3]))
	case TypeFin:
		return s.onFin()
	case TypeStop:
		s.onStop()
	case TypeReset:
		s.onReset(string(p))
	}
	return nil
}

func (m *Mux) opened(id uint32, meta []byte) error {
	if !m.peerID(id) {
		return violation("the peer opened stream %d, which has our parity", id)
	}
	m.mu.Lock()
	if id <= m.peerMax {
		m.mu.Unlock()
		return violation("the peer reopened stream %d", id)
	}
	m.peerMax = id
	full := len(m.streams) >= MaxStreams
	m.mu.Unlock()
	var o Open
	if err := Decode(meta, &o); err != nil {
		return err
	}
	if full || m.h.Open == nil {
		m.post(TypeReset, id, []byte("too many streams"))
		return nil
	}
	s := newStream(m, id)
	m.mu.Lock()
	m.streams[id] = s
	m.mu.Unlock()
	if err := m.h.Open(s, o); err != nil {
		s.resetAsync(err.Error())
	}
	return nil
}
