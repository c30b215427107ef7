package keep

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/config"
	"github.com/enarx-go/enarx/keep/internal/vfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/sealed"
)

// TestSealedVolumeIDConfig: an Enarx.toml volume_id reaches the sealed
// volume: the volume it names opens, another is refused.
func TestSealedVolumeIDConfig(t *testing.T) {
	host := t.TempDir()
	spec := "file:/volume.key"
	entry := func(extra string) config.File {
		t.Helper()
		c, err := config.Parse("Enarx.toml", []byte("[[files]]\nname = \"db\"\nkind = \"dir\"\nguest_path = \"/data\"\nsource = \"sealed\"\nhost_path = \""+
			host+"\"\nkey = \""+spec+"\"\n"+extra))
		if err != nil {
			t.Fatal(err)
		}
		return c.Files[0]
	}
	open := func(f config.File) (*sealed.Volume, error) {
		t.Helper()
		d := &dirs{keys: map[string][]byte{spec: bytes.Repeat([]byte{7}, 32)}, log: slog.New(slog.DiscardHandler)}
		hf, err := os.Open(host)
		if err != nil {
			t.Fatal(err)
		}
		own, err := hostDir(hf)
		hf.Close()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := openSealed(context.Background(), f, own, d); err != nil {
			return nil, err
		}
		return d.volumes[0], nil
	}
	v, err := open(entry(""))
	if err != nil {
		t.Fatal(err)
	}
	id := v.ID().String()
	v.Close()
	if v, err = open(entry("volume_id = \"" + id + "\"\n")); err != nil {
		t.Fatalf("open with its own volume_id: %v", err)
	}
	v.Close()
	other := "0" + id[1:]
	if other == id {
		other = "1" + id[1:]
	}
	_, err = open(entry("volume_id = \"" + other + "\"\n"))
	if !errors.Is(err, sealed.ErrVolumeID) || !errors.Is(err, vfs.ErrIntegrity) || !strings.Contains(err.Error(), other) {
		t.Fatalf("open with another volume_id: %v, want a volume id error", err)
	}
}
