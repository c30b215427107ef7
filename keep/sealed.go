package keep

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/enarx-go/enarx/config"
	"github.com/enarx-go/enarx/keep/internal/vfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/hostfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/sealed"
	"github.com/enarx-go/enarx/keep/internal/vfs/sealed/format"
	"github.com/enarx-go/enarx/keep/internal/vfs/sealed/keys"
)

// openSealed opens the sealed volume of entry f over the host directory
// own (taken over: hostfs keeps every path beneath it), and keeps it to
// be closed, which commits it, when the Keep ends.
func openSealed(ctx context.Context, f config.File, own *os.File, d *dirs) (vfs.Dir, error) {
	if _, err := d.keySource(f.Dir.Key); err != nil {
		own.Close()
		return nil, err
	}
	backing, err := hostfs.New(own, f.Dir.ReadOnly)
	if err != nil {
		return nil, err
	}
	return openSealedOn(ctx, f, backing, d)
}

// openSealedOn is openSealed over the ciphertext store backing (taken
// over): a host directory through hostfs, or one the host serves over a
// stream to a channel Keep (keep/internal/vfs/remote).
func openSealedOn(ctx context.Context, f config.File, backing vfs.Dir, d *dirs) (vfs.Dir, error) {
	src, err := d.keySource(f.Dir.Key)
	if err != nil {
		backing.Close()
		return nil, err
	}
	var pin *format.ID
	if f.Dir.VolumeID != "" {
		id, err := format.ParseID(f.Dir.VolumeID)
		if err != nil {
			backing.Close()
			return nil, fmt.Errorf("sealed volume %q: volume_id %q: %w", f.Name, f.Dir.VolumeID, err)
		}
		pin = &id
	}
	vol, err := sealed.Open(ctx, backing, src, sealed.Options{
		Name:       f.Name,
		MinVersion: f.Dir.MinVersion,
		VolumeID:   pin,
		ReadOnly:   f.Dir.ReadOnly,
		Logger:     d.integrityLog(),
	})
	if err != nil {
		backing.Close()
		return nil, err
	}
	d.mu.Lock()
	d.volumes = append(d.volumes, vol)
	d.mu.Unlock()
	return vol.Root(), nil
}

// keySource is the source of the volume key spec names: the key the host
// passed for a "file:" spec (Options.VolumeKeys), or the SEV-SNP derived
// key bound to this workload (its module's SHA-256).
func (d *dirs) keySource(spec string) (keys.Source, error) {
	file, snp, err := keys.ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	if snp {
		return &keys.SNP{Binding: d.wasmSum[:]}, nil
	}
	k, ok := d.keys[spec]
	if !ok {
		return nil, fmt.Errorf("the host passed no volume key for key = %q (enarx reads %s on the host and passes its 32 bytes)", spec, file)
	}
	return keys.NewStatic(k, spec, d.log)
}

// close closes the sealed volumes (each commits first). Errors are
// logged: the workload's outcome is already decided.
func (d *dirs) close() {
	d.mu.Lock()
	vols := d.volumes
	d.volumes = nil
	d.mu.Unlock()
	for _, v := range vols {
		if err := v.Close(); err != nil {
			d.log.Error("sealed volume: closing (its last commit) failed", "error", err)
		}
	}
}

// integrityLog is the logger of the sealed volumes: their integrity
// errors, logged once per kind (message, volume, object and reason), so
// that a workload retrying a tampered file does not flood the log; at
// most maxKinds kinds, then one line saying further ones are dropped.
func (d *dirs) integrityLog() *slog.Logger {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ilog == nil {
		d.ilog = slog.New(&onceHandler{Handler: d.log.Handler(), seen: &onceSeen{m: map[string]bool{}}})
	}
	return d.ilog
}

// maxKinds bounds the integrity errors remembered (a hostile host can
// make many objects fail).
const maxKinds = 256

type onceSeen struct {
	mu   sync.Mutex
	m    map[string]bool
	full bool
}

// onceHandler passes records below error level through, and each kind of
// error record once.
type onceHandler struct {
	slog.Handler
	attrs string // what WithAttrs added, part of the kind
	seen  *onceSeen
}

func (h *onceHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelError {
		return h.Handler.Handle(ctx, r)
	}
	var kind strings.Builder
	kind.WriteString(h.attrs + "\x00" + r.Message)
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "volume", "object", "reason":
			kind.WriteString("\x00" + a.Key + "=" + a.Value.String())
		}
		return true
	})
	h.seen.mu.Lock()
	k := kind.String()
	first := !h.seen.m[k]
	announceFull := false
	switch {
	case !first:
	case len(h.seen.m) < maxKinds:
		h.seen.m[k] = true
	default:
		first, announceFull = false, !h.seen.full
		h.seen.full = true
	}
	h.seen.mu.Unlock()
	if announceFull {
		n := slog.NewRecord(r.Time, slog.LevelError, fmt.Sprintf("sealed volumes: more than %d kinds of integrity failure; further ones are not logged", maxKinds), 0)
		return h.Handler.Handle(ctx, n)
	}
	if !first {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h *onceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	s := h.attrs
	for _, a := range as {
		s += "\x00" + a.String()
	}
	return &onceHandler{Handler: h.Handler.WithAttrs(as), attrs: s, seen: h.seen}
}

func (h *onceHandler) WithGroup(name string) slog.Handler {
	return &onceHandler{Handler: h.Handler.WithGroup(name), attrs: h.attrs + "\x00group " + name, seen: h.seen}
}
