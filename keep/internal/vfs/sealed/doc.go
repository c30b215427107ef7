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
//     times) and every file's size and chunk table, sealed with the
//     manifest key; its plaintext header (format, volume id, version) is
//     the additional data. See package format for the bytes.
//   - one object per regular file, named "c-" + a random 128-bit file id:
//     the file's 64 KiB chunks, each sealed with the file's key and
//     additional data (volume id, file id, chunk index), at
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
// a remote key-release service can be added behind the same interface),
// the volume's configured name and its format.
//
// # Formats
//
// A volume is created in format 2: every sealing (the manifest, each
// chunk) is XChaCha20-Poly1305 with a fresh random 192-bit nonce, so no
// key wears out however many commits the volume sees (package seal
// gives the figures). Volumes created before format 2 are format 1
// (AES-256-GCM, random 96-bit nonces): they are read and written as
// format 1, and so keep its bound of 2^32 sealings per key (the manifest
// key seals once per commit); copy the data to a new volume to lift it.
// The format is fixed at creation like the volume id: no commit changes
// it. A manifest of an unknown format is refused (format.ErrUnknownFormat,
// with vfs.ErrIntegrity). The format is authenticated (in the header's
// additional data) and each format derives its own keys, so a host that
// relabels a manifest as the other format gets an integrity failure, not
// a downgrade; and since a volume's id comes with its format, no volume
// of the other format carries an id that volume_id pins.
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
// are removed at open. Only one Keep may use a volume at a time: two
// would each remove the other's new objects and overwrite its manifest.
// The host enforces it where it opens the directory for the Keep
// (internal/hostio: a non-blocking flock(2) on the directory, exclusive
// for a read-write volume, shared for a read-only one, held until the
// Keep ends; a second Keep fails to start). The lock is the host's: it
// guards an honest host against mistakes, not against a hostile host,
// which can ignore it or copy the directory.
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
//     manifest with the objects it references), or its replacement by
//     another volume of the same name and key (with the SNP key every
//     Keep of the workload on the chip has that key): each copy is
//     authentic. The manifest carries the volume's random id, fixed at
//     creation, and a version, +1 per commit, both logged at open and
//     close (volume_id, version). Options.MinVersion (Enarx.toml
//     min_version) refuses an older version and Options.VolumeID
//     (Enarx.toml volume_id) any other volume (ErrVolumeID), so an
//     operator who pins what the Keep reported (or a trusted counter
//     service feeding it) detects both. Without the pins neither is
//     detected. Deleting everything is the extreme case: an empty
//     directory makes a new volume (a new id, version 1), refused when
//     volume_id is set or min_version is above 1. What the pins still
//     pass: a state of the pinned volume at or above min_version but
//     older than the last one (the pin lags the volume), and two states
//     with the same version: after a crash the next commit reuses the
//     number of one the crashed run may have written, and a host that
//     copies the directory and runs a Keep on each copy gets two states
//     of one id that each advance (forks); only a trusted monotonic
//     counter would tell them apart;
//   - availability: the host can delete or corrupt the directory (the
//     Keep then reports errors, never wrong data), or fill its disk. It
//     can make an open slow and costly, within bounds: the open reads at
//     most as many entries of the directory's listing as a valid volume
//     holds (the objects of the most files a 1 GiB manifest can list,
//     about 17.6 million, the manifest and a new manifest), keeps 16
//     bytes per object name (some 300 MiB at most) and nothing of other
//     names, and refuses a longer listing (an endless or cycling one), or
//     one whose cookie does not advance, as not a valid volume
//     (vfs.ErrIntegrity); it reads a manifest of at most 1 GiB, which it
//     allocates as the host states its size. The open stops when its
//     context ends (the Keep's interrupt or deadline), checked between
//     pages of the listing and 1 MiB pieces of the manifest; a single
//     request the host never answers (a hung host file system, a stream
//     that goes silent) stalls it all the same;
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
// manifest is rewritten whole at every commit, about 52 bytes per 64 KiB
// chunk of data (40 in format 1) plus the namespace, so a commit of a
// large volume costs a proportional write. An open reads a manifest of at
// most 1 GiB (the bound of what the host can make it allocate), so a
// commit that would write a larger one fails with ENOSPC: a volume holds
// at most about 1.2 TiB of data (1.6 TiB in format 1), or some millions
// of files. Creating a file past format.MaxFiles of that bound (about
// 17.6 million files, counting those deleted since the last commit)
// fails with ENOSPC, so that no crash leaves more objects than an open
// lists.
package sealed
