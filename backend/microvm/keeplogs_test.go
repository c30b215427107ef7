package microvm

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/backend/microvm/internal/channel"
)

// countingHandler counts the records and bytes of message and attribute
// text it is given.
type countingHandler struct{ records, bytes atomic.Int64 }

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.records.Add(1)
	n := len(r.Message)
	r.Attrs(func(a slog.Attr) bool { n += len(a.Key) + len(a.Value.String()); return true })
	h.bytes.Add(int64(n))
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

// TestKeepLogsBounded: the host relays at most maxKeepLogBytes of a Keep's
// log records, however few. The bound was only on their number, so a Keep
// controlled by its workload could send 10 000 records of a frame's
// 64 KiB each, 655 MB on the host's stderr, at ERROR whatever the host's
// level.
func TestKeepLogsBounded(t *testing.T) {
	h := &countingHandler{}
	host, keep := net.Pipe()
	defer keep.Close()
	s := newSession(host, &backend.Launch{}, slog.New(h))
	defer s.mux.Close()
	big := strings.Repeat("x", 60<<10)
	payload := channel.Encode(channel.Log{Level: int(slog.LevelError), Msg: big, Attrs: []string{"k", big[:1000]}})
	const sent = 1000 // 61 MB
	for range sent {
		if err := s.control(channel.TypeLog, payload); err != nil {
			t.Fatal(err)
		}
	}
	if got := h.bytes.Load(); got > maxKeepLogBytes {
		t.Errorf("the host relayed %d bytes of the Keep's logs in %d records (it sent %d records, %d bytes); want at most %d",
			got, h.records.Load(), sent, sent*len(payload), maxKeepLogBytes)
	}
	if h.records.Load() < 2 {
		t.Errorf("the host relayed %d records: none of the Keep's, or no warning that the rest were dropped", h.records.Load())
	}
}
