// Package channel is the protocol between the host and a microVM Keep. It
// runs over one byte stream, a virtio-serial port in the guest and a unix
// socket on the host, and carries framed control messages (hello, launch,
// logs, exit status) and any number of multiplexed, flow-controlled byte
// streams (the workload and its config, stdio, the connections of listen and
// connect files, the Keep's connection to its Steward).
//
// The guest needs no network stack: every socket of the workload is a
// stream of this channel, and TLS is terminated inside the Keep, so the host
// relays only ciphertext.
//
// Trust: each side treats the other as hostile. Every frame is bounds
// checked before anything is allocated for it; a stream's buffered bytes
// never exceed the window its reader granted, and small data frames are
// copied together (smallData), so a peer cannot make the other side buffer
// without limit nor more than about twice the window per stream, however
// it frames its bytes; stream identifiers are allocated monotonically per
// side and never reused, and each side sends its Open frames in identifier
// order however many goroutines open streams (the peer takes a lower
// identifier for a reopened stream). A violation of the protocol ends the
// whole channel (the Keep then stops), because a peer that breaks the
// protocol cannot be relied on for anything that follows. Availability
// is not protected: the host can always stop, delay or reorder its own
// side.
//
// No existing multiplexer fits: the Keep's WASI layer needs non-blocking
// reads and writes and readiness notification for poll_oneoff (yamux and
// HTTP/2 offer only blocking net.Conns), and both ends need the same small,
// fuzzed frame parser.
package channel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Version is the protocol version both sides announce. 2: the host
// serves host and sealed dir entries on RoleFile streams
// (keep/internal/vfs/remote) and Launch carries VolumeKeys; a Keep image
// of version 1 would refuse both in the middle of a run, so the host
// refuses it at hello with a message that says to rebuild the image.
const Version = 2

// Frame types. Control frames travel on stream 0; stream frames on a
// stream opened with Open.
const (
	// Control (stream 0).
	TypeHello   uint8 = 1 // guest → host, JSON Hello, the first frame the Keep sends
	TypeLaunch  uint8 = 2 // host → guest, JSON Launch, once
	TypeLog     uint8 = 3 // guest → host, JSON Log
	TypeExit    uint8 = 4 // guest → host, JSON Exit, once
	TypeExitAck uint8 = 5 // host → guest, empty: the host has the exit status

	// Streams.
	TypeOpen   uint8 = 16 // opens the stream; payload: JSON Open
	TypeData   uint8 = 17 // bytes, within the receiver's window
	TypeWindow uint8 = 18 // 4-byte big-endian window increment
	TypeFin    uint8 = 19 // the sender writes no more
	TypeStop   uint8 = 20 // the sender reads no more: further writes fail
	TypeReset  uint8 = 21 // the sender aborts the stream both ways
)

const (
	// HeaderSize is the size of a frame header: type, three zero bytes,
	// stream identifier and payload length (big-endian).
	HeaderSize = 12
	// MaxPayload bounds every frame's payload.
	MaxPayload = 64 << 10
	// MaxData bounds a data frame's payload (a virtio-serial write moves
	// at most 32 KiB at a time).
	MaxData = 32 << 10
	// Window is the initial (and largest) receive window of each stream
	// in each direction.
	Window = 256 << 10
	// maxOpenMeta bounds an Open frame's metadata.
	maxOpenMeta = 4 << 10
	// smallData: a receiver copies data frames shorter than this into
	// shared chunks of this size instead of keeping each frame, so that a
	// peer that fills a window with tiny frames costs at most about twice
	// the window in memory, not a chunk (and its allocation overhead) per
	// byte.
	smallData = 4 << 10
)

// Header is a decoded frame header.
type Header struct {
	Type   uint8
	Stream uint32
	Length uint32
}

// ErrProtocol is wrapped by every error caused by a peer that broke the
// protocol.
var ErrProtocol = errors.New("channel protocol violation")

func violation(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// ParseHeader decodes and checks a frame header: a known type, zero
// reserved bytes, stream 0 exactly for control frames, and a payload
// length within the type's bound.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, violation("short frame header (%d bytes)", len(b))
	}
	h := Header{Type: b[0], Stream: binary.BigEndian.Uint32(b[4:8]), Length: binary.BigEndian.Uint32(b[8:12])}
	if b[1]|b[2]|b[3] != 0 {
		return Header{}, violation("reserved header bytes are not zero")
	}
	var max uint32
	switch h.Type {
	case TypeHello, TypeLaunch, TypeLog, TypeExit:
		max = MaxPayload
	case TypeExitAck, TypeFin, TypeStop:
		max = 0
	case TypeReset:
		max = 256
	case TypeOpen:
		max = maxOpenMeta
	case TypeData:
		max = MaxData
	case TypeWindow:
		if h.Length != 4 {
			return Header{}, violation("window frame of %d bytes", h.Length)
		}
		max = 4
	default:
		return Header{}, violation("unknown frame type %d", h.Type)
	}
	if control := h.Type < TypeOpen; control != (h.Stream == 0) {
		return Header{}, violation("frame type %d on stream %d", h.Type, h.Stream)
	}
	if h.Length > max {
		return Header{}, violation("frame type %d with a %d-byte payload (at most %d)", h.Type, h.Length, max)
	}
	return h, nil
}

// putHeader encodes h into b[:HeaderSize].
func putHeader(b []byte, h Header) {
	b[0], b[1], b[2], b[3] = h.Type, 0, 0, 0
	binary.BigEndian.PutUint32(b[4:8], h.Stream)
	binary.BigEndian.PutUint32(b[8:12], h.Length)
}

// readFrame reads one whole frame from r. The payload is freshly
// allocated (stream data is kept by the receiver), except that of a data
// frame shorter than smallData, which is read into scratch (at least
// smallData bytes, or nil): the receiver copies it (Stream.onData).
func readFrame(r io.Reader, hdr, scratch []byte) (Header, []byte, error) {
	if _, err := io.ReadFull(r, hdr[:HeaderSize]); err != nil {
		return Header{}, nil, err
	}
	h, err := ParseHeader(hdr)
	if err != nil {
		return Header{}, nil, err
	}
	if h.Length == 0 {
		return h, nil, nil
	}
	var p []byte
	if h.Type == TypeData && h.Length < smallData && len(scratch) >= smallData {
		p = scratch[:h.Length]
	} else {
		p = make([]byte, h.Length)
	}
	if _, err := io.ReadFull(r, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Header{}, nil, err
	}
	return h, p, nil
}
