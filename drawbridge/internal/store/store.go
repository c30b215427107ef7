// Package store keeps Drawbridge's users, repositories, tags and tree nodes.
//
// It has two layers. A Backend stores immutable objects (content bytes plus
// their Meta) under slash-separated keys and guarantees that an object
// appears atomically and at most once: Create either makes a complete,
// verified object visible or leaves nothing behind, and of two concurrent
// Creates of one key exactly one succeeds. There are two Backends: FS (a
// local directory, fsync + rename, single process) and Blob (gocloud.dev
// blob buckets such as S3, shared by several replicas).
//
// Registry implements the registry's rules on top of a Backend: names are
// validated, every tree node is checked against the entry its parent (or
// the tag) gives for it, and a tag becomes visible only once every node of
// its tree is present and verified. Registry trusts its Backend to return
// what it stored; it does not trust callers' bodies or headers.
// Authorization is not done here (see drawbridge/internal/httpapi).
package store

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/enarx-go/enarx/drawbridge/types"
)

// Errors returned (wrapped) by Backends and the Registry.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	// ErrCorrupt is returned (wrapped) by a Backend for an object whose
	// stored meta cannot be read back (e.g. a meta.json left half-written by
	// upstream Drawbridge, which writes it in place) or disagrees with the
	// size of its content.
	ErrCorrupt = errors.New("corrupt object")
)

// InvalidError reports a request whose content does not match what it
// claims or what its parent requires. It maps to HTTP 400.
type InvalidError struct{ Msg string }

func (e *InvalidError) Error() string { return e.Msg }

func invalidf(format string, args ...any) error {
	return &InvalidError{Msg: fmt.Sprintf(format, args...)}
}

// NotFoundError is an ErrNotFound with a message for the client.
type NotFoundError struct{ Msg string }

func (e *NotFoundError) Error() string { return e.Msg }

// Is makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

func notFoundf(format string, args ...any) error {
	return &NotFoundError{Msg: fmt.Sprintf(format, args...)}
}

// RejectedError reports a stored object that does not match what its tree
// pins and that this registry has not verified: it was written by another
// server (upstream Drawbridge, which keeps failed uploads), or damaged. For a
// tree node (Node set), the stored meta or content differs from the entry
// its parent directory (or, for the root, the tag) gives; the publisher can
// replace it by uploading the node's correct content again. For a tag, the
// stored body does not match its own stored digests; tags cannot be
// replaced. Either way the tag stays hidden. It maps to HTTP 409.
type RejectedError struct {
	Tag    types.TagName
	Node   bool
	Path   types.TreePath // the node (Node set)
	Reason string
}

func (e *RejectedError) Error() string {
	if !e.Node {
		return fmt.Sprintf("Stored tag %s does not match its digests (%s): it was not written by this registry, or is damaged, and a tag cannot be replaced; publish another version", e.Tag, e.Reason)
	}
	return fmt.Sprintf("Stored node %q of tag %s does not match its entry (%s): it was not written by this registry, or is damaged; upload it again to replace it", "/"+e.Path.String(), e.Tag, e.Reason)
}

// Object is an open stored object. Content must be closed.
type Object struct {
	Meta    types.Meta
	Content io.ReadCloser
}

// Backend stores objects. Keys are "/"-separated sequences of names
// validated by drawbridge/types (plus the fixed words "users", "repos",
// "tags", "tree", "entries", "verified"). Objects are immutable except
// through Replace, which the Registry uses only for tree nodes of hidden
// tags that it has not verified (and their markers).
type Backend interface {
	// Create reads body to EOF and stores it with meta under key. The
	// object becomes visible only if body returned io.EOF (a body that
	// fails, e.g. a types.VerifyingReader detecting a mismatch, aborts the
	// write and leaves no trace) and only if key did not exist; otherwise
	// it returns an error wrapping ErrExists. Meta is stored as given.
	Create(ctx context.Context, key string, meta types.Meta, body io.Reader) error
	// Replace reads body to EOF and stores it with meta as the object at
	// key, which exists (else an error wrapping ErrNotFound), in place of
	// what it holds. As with Create, nothing changes unless body returned
	// io.EOF, and the new content is durable when Replace returns. A
	// reader sees the old or the new content, and the old or the new meta
	// (FS swaps the two files one after the other). Objects below key (a
	// node's children and marker) are kept.
	Replace(ctx context.Context, key string, meta types.Meta, body io.Reader) error
	// Open returns the object at key, or an error wrapping ErrNotFound.
	Open(ctx context.Context, key string) (Object, error)
	// Stat returns the Meta of the object at key, or ErrNotFound (or
	// ErrCorrupt if its meta cannot be read back).
	Stat(ctx context.Context, key string) (types.Meta, error)
	// List returns the names directly below prefix (a key) that are
	// themselves object keys or prefixes of object keys, in any order.
	List(ctx context.Context, prefix string) ([]string, error)
	// Close releases the backend.
	Close() error
}
