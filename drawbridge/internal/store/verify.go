package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/enarx-go/enarx/drawbridge/types"
)

// VerifyExisting looks for tags that are stored but not visible — all tags
// of a store written by upstream Drawbridge, or a tag whose last node was
// stored just before a crash — and makes each visible if every byte of its
// tree verifies against the Merkle chain: the tag body against its own
// digests, every node's stored meta equal to its parent's entry, and every
// node's content hashed against all of that entry's digests. Tags that fail
// stay hidden; report (if not nil) is told about each tag checked, with nil
// for success. It returns how many tags it made visible.
func (r *Registry) VerifyExisting(ctx context.Context, report func(TagRef, error)) (int, error) {
	users, err := r.b.List(ctx, "users")
	if err != nil {
		return 0, err
	}
	made := 0
	for _, un := range users {
		u, err := types.ParseUserName(un)
		if err != nil {
			continue
		}
		repos, err := r.b.List(ctx, userKey(u)+"/repos")
		if err != nil {
			return made, err
		}
		for _, rn := range repos {
			p, err := types.ParseRepoName(rn)
			if err != nil {
				continue
			}
			tags, err := r.b.List(ctx, tagsKey(u, p))
			if err != nil {
				return made, err
			}
			for _, tn := range tags {
				tag, err := types.ParseTagName(tn)
				if err != nil {
					continue
				}
				t := TagRef{User: u, Repo: p, Tag: tag}
				if r.visible(ctx, t) == nil {
					continue
				}
				err = r.verifyTag(ctx, t)
				if report != nil {
					report(t, err)
				}
				if err == nil {
					made++
				} else if ctx.Err() != nil {
					return made, ctx.Err()
				}
			}
		}
	}
	return made, nil
}

func (r *Registry) verifyTag(ctx context.Context, t TagRef) error {
	meta, body, err := r.readSmall(ctx, t.key(), MaxRecordSize)
	if err != nil {
		return err
	}
	if sum, _ := types.Compute(body); !digestsMatch(meta.Digest, sum) {
		return errors.New("tag body does not match its stored digests")
	}
	root, err := types.ParseTag(meta.Type, body)
	if err != nil {
		return err
	}
	if err := r.verifyNode(ctx, t, types.TreePath{}, root); err != nil {
		return err
	}
	err = r.b.Create(ctx, verifiedKey(t.key()), types.Meta{Digest: root.Digest, Type: verifiedMarkerType}, bytes.NewReader(nil))
	if errors.Is(err, ErrExists) {
		return nil
	}
	return err
}

// digestsMatch reports whether every digest in want equals the one in got.
func digestsMatch(want, got types.Digests) bool {
	if len(want) == 0 {
		return false
	}
	for a, v := range want {
		if !bytes.Equal(got[a], v) {
			return false
		}
	}
	return true
}

func (r *Registry) verifyNode(ctx context.Context, t TagRef, p types.TreePath, e types.Entry) error {
	if len(p) > types.MaxPathDepth {
		return fmt.Errorf("tree deeper than %d levels", types.MaxPathDepth)
	}
	o, err := r.b.Open(ctx, nodeKey(t.key(), p))
	if err != nil {
		return fmt.Errorf("node %q: %w", "/"+p.String(), err)
	}
	defer o.Content.Close()
	if !o.Meta.Equal(e.Meta) {
		return fmt.Errorf("node %q: stored meta does not match its parent entry", "/"+p.String())
	}
	vr, err := types.NewVerifyingReader(o.Content, e.Digest, e.Length)
	if err != nil {
		return fmt.Errorf("node %q: %w", "/"+p.String(), err)
	}
	if e.Type != types.DirectoryType {
		if _, err := io.Copy(io.Discard, vr); err != nil {
			return fmt.Errorf("node %q: %w", "/"+p.String(), err)
		}
		return nil
	}
	if e.Length > MaxDirectorySize {
		return fmt.Errorf("node %q: directory larger than %d bytes", "/"+p.String(), MaxDirectorySize)
	}
	buf, err := io.ReadAll(vr)
	if err != nil {
		return fmt.Errorf("node %q: %w", "/"+p.String(), err)
	}
	d, err := types.ParseDirectory(buf)
	if err != nil {
		return fmt.Errorf("node %q: %w", "/"+p.String(), err)
	}
	for _, n := range d.Names() {
		if err := r.verifyNode(ctx, t, p.Child(n), d[n]); err != nil {
			return err
		}
	}
	return nil
}
