package guest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"unicode/utf8"

	"github.com/enarx-go/enarx/backend/microvm/internal/channel"
)

// maxLogText bounds one log message or value sent to the host.
const maxLogText = 4 << 10

// logHandler sends the Keep's log records to the host as Log frames. The
// Keep logs only what the host may see (never keys or workload secrets, as
// everywhere in enarx); the host re-logs them under its own logger.
type logHandler struct {
	mux   *channel.Mux
	level slog.Level
	attrs []string
	group string
}

func newLogHandler(m *channel.Mux, level string) *logHandler {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return &logHandler{mux: m, level: l}
}

func (h *logHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	rec := channel.Log{Level: int(r.Level), Msg: clip(r.Message, maxLogText), Attrs: append([]string(nil), h.attrs...)}
	r.Attrs(func(a slog.Attr) bool {
		rec.Attrs = appendAttr(rec.Attrs, h.group, a)
		return len(rec.Attrs) < 64
	})
	b := channel.Encode(rec)
	for len(b) > channel.MaxPayload && len(rec.Attrs) > 0 {
		rec.Attrs = rec.Attrs[:len(rec.Attrs)-2]
		b = channel.Encode(rec)
	}
	return h.mux.Send(channel.TypeLog, b)
}

func appendAttr(out []string, group string, a slog.Attr) []string {
	a.Value = a.Value.Resolve()
	key := a.Key
	if group != "" {
		key = group + "." + key
	}
	if a.Value.Kind() == slog.KindGroup {
		for _, g := range a.Value.Group() {
			out = appendAttr(out, key, g)
		}
		return out
	}
	return append(out, clip(key, maxLogText), clip(a.Value.String(), maxLogText))
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append([]string(nil), h.attrs...)
	for _, a := range as {
		n.attrs = appendAttr(n.attrs, h.group, a)
	}
	return &n
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	n := *h
	if n.group != "" {
		name = n.group + "." + name
	}
	n.group = name
	return &n
}

// clip bounds s to max bytes, cut at a character and followed by its
// whole length, as valid UTF-8.
func clip(s string, max int) string {
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + fmt.Sprintf("… (%d bytes)", len(s))
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
