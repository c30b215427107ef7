package client

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/enarx-go/enarx/drawbridge/bundle"
	"github.com/enarx-go/enarx/drawbridge/types"
)

// FetchTree downloads the package p into the directory dst, which must not
// exist. Every node is verified from the tag down (digest, length and type
// equal to the entry that names it) before the directory appears: the tree
// is assembled in a temporary sibling directory and renamed into place, so
// an interrupted or failed fetch leaves nothing at dst. A single-file
// package is written as dst/main.wasm.
func (c *Client) FetchTree(ctx context.Context, p PackageSpec, dst string) (*Tag, error) {
	if _, err := os.Lstat(dst); err == nil {
		return nil, fmt.Errorf("%s already exists; choose a new directory", dst)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	tag, err := c.GetTag(ctx, p)
	if err != nil {
		return nil, err
	}
	stage, err := os.MkdirTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".partial-")
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", dst, err)
	}
	defer os.RemoveAll(stage) // after a successful rename there is nothing left
	if err := os.Chmod(stage, 0o755); err != nil {
		return nil, err
	}
	count := 0
	if tag.Entry.Type == types.DirectoryType {
		err = c.fetchDir(ctx, p, types.TreePath{}, tag.Entry.Meta, stage, &count)
	} else {
		err = c.fetchFile(ctx, p, types.TreePath{}, tag.Entry.Meta, filepath.Join(stage, bundle.WasmName))
	}
	if err != nil {
		return nil, err
	}
	if err := os.Rename(stage, dst); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dst, err)
	}
	return tag, nil
}

func (c *Client) fetchDir(ctx context.Context, p PackageSpec, at types.TreePath, want types.Meta, dir string, count *int) error {
	if *count++; *count > MaxTreeNodes {
		return fmt.Errorf("package %s has more than %d nodes", p, MaxTreeNodes)
	}
	if len(at) > types.MaxPathDepth {
		return fmt.Errorf("package %s is nested deeper than %d levels", p, types.MaxPathDepth)
	}
	r, err := c.GetNode(ctx, p, at, want, MaxDirectorySize)
	if err != nil {
		return err
	}
	d, err := types.ParseDirectory(r.Body)
	if err != nil {
		return fmt.Errorf("node %q of %s: %w", "/"+at.String(), p, err)
	}
	for _, name := range d.Names() {
		e := d[name]
		child := at.Child(name)
		path := filepath.Join(dir, string(name))
		if e.Type == types.DirectoryType {
			if err := os.Mkdir(path, 0o755); err != nil {
				return err
			}
			if err := c.fetchDir(ctx, p, child, e.Meta, path, count); err != nil {
				return err
			}
			continue
		}
		if *count++; *count > MaxTreeNodes {
			return fmt.Errorf("package %s has more than %d nodes", p, MaxTreeNodes)
		}
		if err := c.fetchFile(ctx, p, child, e.Meta, path); err != nil {
			return err
		}
	}
	return nil
}

func (c *Client) fetchFile(ctx context.Context, p PackageSpec, at types.TreePath, want types.Meta, path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	err = c.GetNodeTo(ctx, p, at, want, MaxFileSize, func() (io.Writer, error) { return f, nil })
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Cache keeps verified node bodies on disk by the SHA-256 of their content
// (Dir/sha-256/<hex>), so deploying a package again does not download it
// again. A cached body is re-hashed when read; a corrupt entry is removed and
// fetched anew.
type Cache struct{ Dir string }

// DefaultCacheDir returns os.UserCacheDir()/enarx/drawbridge.
func DefaultCacheDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("locating the user cache directory: %w", err)
	}
	return filepath.Join(d, "enarx", "drawbridge"), nil
}

func (c *Cache) path(m types.Meta) (string, bool) {
	if c == nil || c.Dir == "" {
		return "", false
	}
	sum, ok := m.Digest[types.SHA256]
	if !ok {
		return "", false
	}
	return filepath.Join(c.Dir, string(types.SHA256), hex.EncodeToString(sum)), true
}

// Get returns the cached body for m, if present and intact.
func (c *Cache) Get(m types.Meta) ([]byte, bool) {
	p, ok := c.path(m)
	if !ok {
		return nil, false
	}
	st, err := os.Stat(p)
	if err != nil || st.Size() != m.Length {
		return nil, false
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, false
	}
	sum := m.Digest[types.SHA256]
	if bundle.CheckBody(b, types.Digests{types.SHA256: sum}, m.Length) != nil {
		os.Remove(p)
		return nil, false
	}
	return b, true
}

// Put stores a verified body (best effort: errors only cost a re-download).
func (c *Cache) Put(m types.Meta, body []byte) {
	p, ok := c.path(m)
	if !ok {
		return
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(body)
	cerr := tmp.Close()
	if werr != nil || cerr != nil || os.Rename(tmp.Name(), p) != nil {
		os.Remove(tmp.Name())
	}
}

// FetchBundle fetches the nodes a Keep needs to run package p — the tag
// entry, the root node and, for a directory, main.wasm and Enarx.toml — and
// returns them as a bundle for bundle.Verify. The host checks the chain too
// (to fail early and to cache only verified bodies), but the Keep's check is
// the one that counts. Bodies found in cache (by the digest their parent
// names) are not downloaded again.
func (c *Client) FetchBundle(ctx context.Context, p PackageSpec, cache *Cache) (*bundle.Bundle, error) {
	tag, err := c.GetTag(ctx, p)
	if err != nil {
		return nil, err
	}
	b := &bundle.Bundle{Source: p.RepoSpec.String() + ":" + string(p.Tag)}
	if len(p.Pin) > 0 {
		b.Pin = p.Pin.String()
	}
	b.Records = append(b.Records, bundle.Record{Path: bundle.TagPath, Type: tag.Meta.Type, Digest: tag.Meta.Digest.String(), Body: tag.Body})
	fetch := func(path types.TreePath, rec string, want types.Meta, limit int64) ([]byte, error) {
		if want.Length > limit {
			return nil, fmt.Errorf("node %q of %s: %d bytes exceeds the limit of %d bytes", "/"+path.String(), p, want.Length, limit)
		}
		body, ok := cache.Get(want)
		if !ok {
			r, err := c.GetNode(ctx, p, path, want, limit)
			if err != nil {
				return nil, err
			}
			body = r.Body
			cache.Put(want, body)
		}
		b.Records = append(b.Records, bundle.Record{Path: rec, Type: want.Type, Digest: want.Digest.String(), Body: body})
		return body, nil
	}
	switch tag.Entry.Type {
	case types.WasmType:
		if _, err := fetch(types.TreePath{}, bundle.RootPath, tag.Entry.Meta, bundle.MaxWasmSize); err != nil {
			return nil, err
		}
	case types.DirectoryType:
		body, err := fetch(types.TreePath{}, bundle.RootPath, tag.Entry.Meta, bundle.MaxDirectorySize)
		if err != nil {
			return nil, err
		}
		d, err := types.ParseDirectory(body)
		if err != nil {
			return nil, fmt.Errorf("node \"/\" of %s: %w", p, err)
		}
		we, ok := d[bundle.WasmName]
		if !ok {
			return nil, fmt.Errorf("package %s has no main.wasm", p)
		}
		if _, err := fetch(types.TreePath{bundle.WasmName}, bundle.WasmName, we.Meta, bundle.MaxWasmSize); err != nil {
			return nil, err
		}
		if ce, ok := d[bundle.ConfigName]; ok {
			if _, err := fetch(types.TreePath{bundle.ConfigName}, bundle.ConfigName, ce.Meta, bundle.MaxConfigSize); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("package %s: unsupported root type %q", p, tag.Entry.Type)
	}
	return b, nil
}
