package sandbox

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// The host and the Keep process talk over a private socketpair (fd 3 in the
// Keep). The host sends one launch message; the Keep answers with one result
// message. Each message is a 4-byte magic, a 4-byte big-endian header length,
// a JSON header, then the raw payloads whose lengths the header gives. Raw
// payloads avoid base64 for multi-megabyte modules; JSON keeps the header
// extensible and safe to decode from a hostile peer (encoding/gob is not
// hardened against hostile input).

const (
	launchMagic = "EKL1"
	resultMagic = "EKR1"

	maxHeader = 64 << 10
	// maxModuleSize bounds the module (and bundle) the Keep will read.
	maxModuleSize = 1 << 30
	maxConfig     = 1 << 20
)

// launch is what the Keep process needs to run a workload: the wire form
// of a backend.Launch, built by newLaunch and read back by keepArgs
// (launch.go).
type launch struct {
	// WasmSHA256 is the hex digest the Keep must find for the module
	// bytes: keep.Run refuses the module otherwise (keepArgs).
	WasmSHA256   string   `json:"wasm_sha256"`
	WasmLen      int64    `json:"wasm_len"`
	ConfigSHA256 string   `json:"config_sha256,omitempty"`
	ConfigLen    int64    `json:"config_len"`
	HasConfig    bool     `json:"has_config"`
	ConfigName   string   `json:"config_name,omitempty"`
	Package      string   `json:"package,omitempty"`
	Args         []string `json:"args,omitempty"`
	// Env is keep.Options.Env ("NAME=value" entries; the Keep checks
	// them with keep.ValidateEnv).
	Env []string `json:"env,omitempty"`
	// NFiles is the number of [[files]] entries. The host passes one fd
	// per entry, at fds 4, 5, …, except for the indexes in Null.
	NFiles       int    `json:"nfiles"`
	Null         []int  `json:"null,omitempty"`
	BundleLen    int64  `json:"bundle_len,omitempty"`
	BundleSHA256 string `json:"bundle_sha256,omitempty"`
	MemoryLimit  uint64 `json:"memory_limit,omitempty"`
	// Engine names the wasm engine ("" = the Keep binary's default).
	Engine string `json:"engine,omitempty"`
	// CacheDir is the absolute host path of the module's compilation
	// cache directory, which the Keep mounts at /cache ("" = none).
	CacheDir string `json:"cache_dir,omitempty"`
	LogLevel string `json:"log_level,omitempty"`
	// RequireIsolation makes the Keep refuse to run when a layer is missing.
	RequireIsolation bool `json:"require_isolation,omitempty"`
	// Broker says a dial-broker socket follows the files (see broker.go).
	Broker bool `json:"broker,omitempty"`
	// PayloadFD says the payloads (module, config, bundle, in that order)
	// are not on the socket but in a sealed memfd passed after the files
	// and the broker (see payload_linux.go): the Keep maps it instead of
	// copying megabytes through the socket in socket-buffer-sized round
	// trips. The digests are checked either way.
	PayloadFD bool `json:"payload_fd,omitempty"`
	// GoMaxProcs is the host's GOMAXPROCS, which the Keep takes once
	// confined. It starts with 1, so that the Go runtime has started
	// fewer threads for each all-threads system call of its confinement
	// to stop and signal; threads started later are clones of confined
	// ones.
	GoMaxProcs int `json:"gomaxprocs,omitempty"`
	// CloneFlags are the namespaces the host created the Keep in.
	CloneFlags uintptr `json:"clone_flags,omitempty"`
	// Dirs are the [[files]] entries of kind "dir" whose host directory
	// the host passed as a descriptor (sources "host" and "sealed"; a
	// "memory" entry gets none and is in Null), in increasing index order.
	// The Keep confines its file system access to them
	// (confine_linux.go), read-only where ReadOnly says so.
	Dirs []launchDir `json:"dirs,omitempty"`
	// VolumeKeysLen is the length of the volume-key message that follows
	// the payloads on the control socket (0: none). The keys travel in a
	// message of their own, read only once the Keep is confined, and never
	// in the header, which holds what the Keep needs to confine itself.
	VolumeKeysLen int `json:"volume_keys_len,omitempty"`

	wasm, config, bundle []byte
	// volumeKeys is keep.Options.VolumeKeys (key spec → 32-byte key).
	volumeKeys map[string][]byte
	// volumeKeysMsg is its encoding, which seal makes.
	volumeKeysMsg []byte
}

// launchDir is one passed directory.
type launchDir struct {
	// Index is the [[files]] entry's index.
	Index    int  `json:"index"`
	ReadOnly bool `json:"readonly,omitempty"`
	// Path is the directory's absolute host path (host_path), by which
	// the Keep finds it again in its own mount namespace to mount
	// it in the empty root (the descriptor's mount is the host's, which a
	// namespace cannot bind from); it must be the passed directory.
	Path string `json:"path"`
}

// Bounds of the volume-key message: a key is exactly volumeKeySize bytes
// (AES-256), a key spec at most maxKeySpec bytes.
const (
	volumeKeySize   = 32
	maxKeySpec      = 4096
	maxVolumeKeys   = 1024
	maxVolumeKeyMsg = 1 << 20
)

// result is the Keep's answer.
type result struct {
	ExitCode int    `json:"exit_code"`
	Error    string `json:"error,omitempty"`
	// Layers reports each confinement layer and whether it is in force.
	Layers []Layer `json:"layers,omitempty"`
}

// isSHA256Hex reports whether s is a SHA-256 digest as digest writes it.
func isSHA256Hex(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// fileDigest is the hex SHA-256 of the first n bytes of f, read through a
// 64 KiB buffer.
func fileDigest(f *os.File, n int64) (string, error) {
	h := sha256.New()
	got, err := io.CopyBuffer(h, io.NewSectionReader(f, 0, n), make([]byte, 64<<10))
	if err != nil {
		return "", err
	}
	if got != n {
		return "", fmt.Errorf("read %d of %d bytes", got, n)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func writeMsg(w io.Writer, magic string, hdr any, payloads ...[]byte) error {
	h, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	var pre [8]byte
	copy(pre[:4], magic)
	binary.BigEndian.PutUint32(pre[4:], uint32(len(h)))
	bufs := [][]byte{pre[:], h}
	bufs = append(bufs, payloads...)
	for _, b := range bufs {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

func readHeader(r io.Reader, magic string, hdr any) error {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return fmt.Errorf("reading message: %w", err)
	}
	if string(pre[:4]) != magic {
		return fmt.Errorf("bad message magic %q", pre[:4])
	}
	n := binary.BigEndian.Uint32(pre[4:])
	if n > maxHeader {
		return fmt.Errorf("message header of %d bytes exceeds %d", n, maxHeader)
	}
	h := make([]byte, n)
	if _, err := io.ReadFull(r, h); err != nil {
		return fmt.Errorf("reading message header: %w", err)
	}
	d := json.NewDecoder(bytes.NewReader(h))
	d.DisallowUnknownFields()
	if err := d.Decode(hdr); err != nil {
		return fmt.Errorf("decoding message header: %w", err)
	}
	if !atEOF(d) {
		return errors.New("trailing data after message header")
	}
	return nil
}

// atEOF reports whether d holds nothing but white space after the value
// it decoded. Not d.More, which reports no more input before a '}' or ']'.
func atEOF(d *json.Decoder) bool {
	_, err := d.Token()
	return err == io.EOF
}

// seal fills in the payload lengths and digests; a module or bundle digest
// the host already computed (for its cache directory) is reused, not
// recomputed.
func (l *launch) seal() {
	l.WasmLen = int64(len(l.wasm))
	if l.WasmSHA256 == "" {
		l.WasmSHA256 = digest(l.wasm)
	}
	l.ConfigLen = int64(len(l.config))
	if l.HasConfig {
		l.ConfigSHA256 = digest(l.config)
	}
	l.BundleLen = int64(len(l.bundle))
	if l.BundleLen > 0 && l.BundleSHA256 == "" {
		l.BundleSHA256 = digest(l.bundle)
	}
	l.volumeKeysMsg, l.VolumeKeysLen = nil, 0
	if len(l.volumeKeys) > 0 {
		// A map of []byte: JSON gives each key as base64.
		l.volumeKeysMsg, _ = json.Marshal(l.volumeKeys)
		l.VolumeKeysLen = len(l.volumeKeysMsg)
	}
}

// encode writes the launch message; the payloads follow the header on w
// unless they travel in a memfd (PayloadFD).
func (l *launch) encode(w io.Writer) error {
	l.seal()
	if l.PayloadFD {
		return writeMsg(w, launchMagic, l, l.volumeKeysMsg)
	}
	return writeMsg(w, launchMagic, l, l.wasm, l.config, l.bundle, l.volumeKeysMsg)
}

// decodeLaunch reads a launch message whose payloads follow on r.
func decodeLaunch(r io.Reader) (*launch, error) { return decodeLaunchWith(r, nil) }

// decodeLaunchWith reads a launch message from the (untrusted) host and
// checks the lengths and the config and bundle digests it announced (the
// module's digest is keep.Run's to check: keepArgs). payloads, if set,
// maps the
// payload memfd of a PayloadFD message (see mapPayload); without it such a
// message is refused.
func decodeLaunchWith(r io.Reader, payloads func(l *launch, size int64) ([]byte, error)) (*launch, error) {
	l, err := readLaunchHeader(r)
	if err != nil {
		return nil, err
	}
	if err := l.readPayloads(r, payloads); err != nil {
		return nil, err
	}
	return l, nil
}

// readLaunchHeader reads and checks a launch message's header; the
// payloads, if they travel on the socket, follow on r (readPayloads).
func readLaunchHeader(r io.Reader) (*launch, error) {
	var l launch
	if err := readHeader(r, launchMagic, &l); err != nil {
		return nil, err
	}
	if err := l.check(); err != nil {
		return nil, err
	}
	return &l, nil
}

// check bounds the header's sizes and counts.
func (l *launch) check() error {
	if l.WasmLen < 0 || l.WasmLen > maxModuleSize {
		return fmt.Errorf("module size %d is outside 0..%d", l.WasmLen, maxModuleSize)
	}
	if !isSHA256Hex(l.WasmSHA256) {
		return fmt.Errorf("module digest %q is not a hex SHA-256", l.WasmSHA256)
	}
	if l.ConfigLen < 0 || l.ConfigLen > maxConfig || (!l.HasConfig && l.ConfigLen != 0) {
		return fmt.Errorf("config size %d is invalid", l.ConfigLen)
	}
	if l.BundleLen < 0 || l.BundleLen > maxModuleSize {
		return fmt.Errorf("bundle size %d is outside 0..%d", l.BundleLen, maxModuleSize)
	}
	if l.NFiles < 0 || l.NFiles > 1024 {
		return fmt.Errorf("file count %d is outside 0..1024", l.NFiles)
	}
	prev := -1
	for _, n := range l.Null {
		if n <= prev || n >= l.NFiles {
			return fmt.Errorf("null fd list %v is not increasing within 0..%d", l.Null, l.NFiles-1)
		}
		prev = n
	}
	prev = -1
	for _, d := range l.Dirs {
		if d.Index <= prev || d.Index >= l.NFiles || slices.Contains(l.Null, d.Index) {
			return fmt.Errorf("directory list %v is not increasing within the passed files", l.Dirs)
		}
		if !filepath.IsAbs(d.Path) || strings.ContainsRune(d.Path, 0) {
			return fmt.Errorf("directory of files[%d]: %q is not an absolute path", d.Index, d.Path)
		}
		prev = d.Index
	}
	if l.VolumeKeysLen < 0 || l.VolumeKeysLen > maxVolumeKeyMsg {
		return fmt.Errorf("volume-key message of %d bytes is outside 0..%d", l.VolumeKeysLen, maxVolumeKeyMsg)
	}
	if l.CacheDir != "" && (!filepath.IsAbs(l.CacheDir) || strings.ContainsRune(l.CacheDir, 0)) {
		return fmt.Errorf("cache directory %q is not an absolute path", l.CacheDir)
	}
	return nil
}

// readPayloads reads the payloads of a checked header, from the memfd
// (payloads) or from r, and checks the config's and the bundle's
// announced digests.
func (l *launch) readPayloads(r io.Reader, payloads func(l *launch, size int64) ([]byte, error)) error {
	var err error
	if l.PayloadFD {
		if payloads == nil {
			return errors.New("payloads announced in a memfd, but none is expected")
		}
		data, err := payloads(l, l.WasmLen+l.ConfigLen+l.BundleLen)
		if err != nil {
			return fmt.Errorf("mapping the payloads: %w", err)
		}
		l.wasm = data[:l.WasmLen:l.WasmLen]
		rest := data[l.WasmLen:]
		l.config = rest[:l.ConfigLen:l.ConfigLen]
		l.bundle = rest[l.ConfigLen:]
	} else {
		if l.wasm, err = readN(r, l.WasmLen); err != nil {
			return fmt.Errorf("reading module: %w", err)
		}
		if l.config, err = readN(r, l.ConfigLen); err != nil {
			return fmt.Errorf("reading config: %w", err)
		}
		if l.BundleLen > 0 {
			if l.bundle, err = readN(r, l.BundleLen); err != nil {
				return fmt.Errorf("reading bundle: %w", err)
			}
		}
	}
	// The module's digest is checked by keep.Run (keep.Options.WasmSHA256),
	// in the same pass that names the module in the compilation cache.
	if l.HasConfig {
		if l.config == nil {
			l.config = []byte{} // an empty Enarx.toml, not the default config
		}
		if got := digest(l.config); got != l.ConfigSHA256 {
			return fmt.Errorf("config digest mismatch: expected sha256:%s, received sha256:%s", l.ConfigSHA256, got)
		}
	} else {
		l.config = nil
	}
	if l.BundleLen > 0 {
		if got := digest(l.bundle); got != l.BundleSHA256 {
			return fmt.Errorf("bundle digest mismatch: expected sha256:%s, received sha256:%s", l.BundleSHA256, got)
		}
	} else {
		l.bundle = nil
	}
	if l.VolumeKeysLen > 0 {
		// Always on the socket, after the payloads (if they are there).
		msg, err := readN(r, int64(l.VolumeKeysLen))
		if err != nil {
			return fmt.Errorf("reading the volume keys: %w", err)
		}
		l.volumeKeys, err = decodeVolumeKeys(msg)
		clear(msg)
		if err != nil {
			return err
		}
	}
	return nil
}

// decodeVolumeKeys reads the volume-key message: a JSON object from key
// spec to base64 key. Every key must be exactly volumeKeySize bytes.
func decodeVolumeKeys(msg []byte) (map[string][]byte, error) {
	var keys map[string][]byte
	d := json.NewDecoder(bytes.NewReader(msg))
	if err := d.Decode(&keys); err != nil {
		return nil, errors.New("decoding the volume keys: malformed message") // never echo key bytes
	}
	if !atEOF(d) {
		return nil, errors.New("trailing data after the volume keys")
	}
	if len(keys) == 0 || len(keys) > maxVolumeKeys {
		return nil, fmt.Errorf("%d volume keys; want 1..%d", len(keys), maxVolumeKeys)
	}
	for spec, k := range keys {
		if spec == "" || len(spec) > maxKeySpec || strings.ContainsRune(spec, 0) {
			return nil, fmt.Errorf("volume key spec of %d bytes is empty, too long or holds a NUL", len(spec))
		}
		if len(k) != volumeKeySize {
			return nil, fmt.Errorf("volume key for %q is %d bytes; want %d", spec, len(k), volumeKeySize)
		}
	}
	return keys, nil
}

// readN reads exactly n bytes, growing the buffer as data arrives so that a
// lying length cannot make us allocate a gigabyte up front.
func readN(r io.Reader, n int64) ([]byte, error) {
	var b bytes.Buffer
	if n < 1<<20 {
		b.Grow(int(n))
	}
	got, err := io.Copy(&b, io.LimitReader(r, n))
	if err != nil {
		return nil, err
	}
	if got != n {
		return nil, io.ErrUnexpectedEOF
	}
	return b.Bytes(), nil
}
