// Package sealed is the "sealed" source of the Keep's preopened
// directories (Enarx.toml [[files]] kind = "dir", source = "sealed"): a
// directory tree kept in Keep memory (package tree: the one namespace and
// path resolver, shared with the memory source) whose file contents and
// metadata are stored encrypted and authenticated in a host directory.
//
// # Layout
//
// The host directory (reached only through a vfs.Dir, the hostfs source
// in a Keep) holds:
//
//   - "manifest": the namespace (names, directories, symlinks, hard links,
//     times) and every file's size and chunk table, AES-256-GCM-sealed
//     with the manifest key; its plaintext header (volume id, version) is
//     the additional data. See package format for the bytes.
//   - one object per regular file, named "c-" + a random 128-bit file id:
//     the file's 64 KiB chunks, each AES-256-GCM-sealed with the file's key
//     and additional data (volume id, file id, chunk index), at
//     copy-on-write slots (a chunk is never rewritten in place; freed
//     slots are reused, lowest first, and cut off the object's end after
//     a commit). The manifest records each chunk's slot, length, nonce
//     and tag.
//
// Reads and writes go through a write-back cache of 8 plaintext chunks
// per file; runs of whole chunks bypass it and are sealed or opened in
// parallel. A chunk is decrypted in the Keep's own memory and copied to
// the caller (possibly guest memory) only once authenticated. The cache,
// the scratch buffers and the open host object of a file are taken on
// its first read or write; past 128 files holding them, those of the
// least recently used are given back (their dirty chunks sealed, written
// and synced first), so that touching thousands of files costs neither
// memory nor host handles (a remote backing allows a few thousand).
//
// Keys (package seal) derive by HKDF-SHA256 from the 32 bytes of a key
// source (package keys: a development key file, the SEV-SNP derived key;
// a remote key-release service can be added behind the same interface)
// and the volume's configured name.
//
// # Commits
//
// File.Sync, File.Datasync and Dir.Sync on any file or directory of the
// volume, and closing the volume (Keep exit), commit: every file's
// pending chunks are sealed, written and synced; then the manifest is
// written to "manifest.new", synced, renamed over "manifest" and the
// directory synced. A slot the durable manifest references is never
// written before a newer manifest is durable, so a crash (kill -9, power
// loss) or a full disk (ENOSPC, returned to the guest) at any point
// leaves the last committed state whole; what was written after it is
// lost, as after a crash of any file system whose data was not synced.
// Objects no manifest lists (a crash's leftovers, files deleted since)
// are removed at open. Only one Keep may use a volume at a time.
//
// # Threat model
//
// Trusted: the Keep (this code, its memory) and the key source. Untrusted:
// the host, which controls the directory's bytes, names and their timing.
//
// Protected:
//   - confidentiality of file contents, file and directory names, the
//     tree's shape, symlink targets, link counts and times;
//   - integrity of every byte read: a flipped, truncated, swapped
//     (between files, chunks or slots), renamed, deleted or older chunk or
//     object, and any change of the manifest, fail authentication. The
//     guest sees EIO (errors wrap vfs.ErrIntegrity) and the Keep logs an
//     error naming the object and the reason; unauthenticated bytes are
//     never returned. A directory with objects but no valid manifest is
//     refused, never silently re-created;
//   - binding: a volume opens only under its name and key; the manifest
//     or objects of a volume of another name or key fail authentication.
//
// Not protected:
//   - rollback of the whole volume to an older complete state (an older
//     manifest with the objects it references): each copy is authentic.
//     The manifest carries a version, +1 per commit, logged at open and
//     close; Options.MinVersion (Enarx.toml min_version) refuses anything
//     older, so an operator who pins the last version the Keep reported
//     (or a trusted counter service feeding it) detects the rollback.
//     Without the pin it is not detected. Deleting everything is the
//     extreme case: an empty directory makes a new volume (version 1),
//     refused when min_version is above 1. The pin is a number only: it
//     passes another volume of the same name and key (volume ids are not
//     pinned; with the SNP key every Keep of the workload on the chip has
//     that key) and another state of the same version (after a crash the
//     next commit reuses the number of one the crashed run may have
//     written);
//   - availability: the host can delete or corrupt the directory (the
//     Keep then reports errors, never wrong data), or fill its disk;
//   - what the host observes: the number of files, each file's size
//     rounded up to 4 KiB (a partial chunk is sealed zero-padded to a
//     multiple of 4 KiB, so an object's length gives no more), the
//     manifest's length (about the number of nodes, names' lengths and
//     chunks), which chunks are written and read and when, and commit
//     times;
//   - a development key file (key = "file:...") is known to the host:
//     such a volume protects against nothing the host does and is
//     labelled so in the log.
//
// Symlinks and hard links are supported (they live in the manifest). The
// manifest is rewritten whole at every commit, about 40 bytes per 64 KiB
// chunk of data plus the namespace, so a commit of a large volume costs a
// proportional write. An open reads a manifest of at most 1 GiB (the
// bound of what the host can make it allocate), so a commit that would
// write a larger one fails with ENOSPC: a volume holds at most about 1.6
// TiB of data, or some millions of files.
package sealed
