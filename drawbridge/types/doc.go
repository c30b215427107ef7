// Package types is the Drawbridge wire vocabulary: user, repository, tag and
// tree names, digest sets and their Content-Digest header form, tree entries,
// directories and their canonical JSON, and the Merkle computation that ties a
// tag to every byte of its tree.
//
// Everything here is pure parsing, formatting and hashing. It trusts nothing:
// every Parse function takes hostile input and returns an error rather than
// panicking. What a digest or a name is allowed to mean (authorization,
// storage) is decided by the callers (drawbridge/internal/httpapi, drawbridge/client).
//
// The formats follow upstream Drawbridge 0.4.x byte for byte (see
// docs/drawbridge.md and the golden tests), with two deliberate tightenings:
// tree names "." and ".." are rejected, and digests of the wrong length for
// their algorithm are rejected when parsed.
package types
