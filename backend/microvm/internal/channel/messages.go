package channel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Hello is the Keep's first frame: it booted and speaks this protocol.
type Hello struct {
	Version int `json:"version"`
	// Keep is the Keep's enarx version.
	Keep string `json:"keep"`
	// TEE is what the Keep found itself running in: "none", "snp" or
	// "tdx". It is the Keep's own finding; the host cannot change it, and
	// a Steward trusts only the evidence, never this word.
	TEE string `json:"tee"`
}

// Launch is what the host asks the Keep to run. The workload, its config
// and any bundle or cache files follow as streams (see the Role constants);
// Launch says which ones to wait for.
type Launch struct {
	Version int `json:"version"`
	// HasConfig says an Enarx.toml follows as a RoleConfig stream;
	// without one the Keep uses the default (stdin, stdout, stderr).
	HasConfig  bool   `json:"has_config,omitempty"`
	ConfigName string `json:"config_name,omitempty"`
	// HasBundle says the workload is a registry bundle (RoleBundle)
	// instead of a module (RoleWasm).
	HasBundle bool   `json:"has_bundle,omitempty"`
	Package   string `json:"package,omitempty"`
	// Args are appended to the config's args.
	Args []string `json:"args,omitempty"`
	// Env is keep.Options.Env: "NAME=value" entries added after the
	// config's [env] (the Keep checks them, keep.ValidateEnv).
	Env         []string `json:"env,omitempty"`
	MemoryLimit uint64   `json:"memory_limit,omitempty"`
	// Engine names the wasm engine ("" = the Keep's default); a Keep
	// without it refuses the run.
	Engine   string `json:"engine,omitempty"`
	LogLevel string `json:"log_level,omitempty"`
	// Steward says the host will connect RoleSteward streams to the
	// Steward named in Enarx.toml.
	Steward bool `json:"steward,omitempty"`
	// Cache lists compilation cache files that follow as RoleCache
	// streams; CachePut asks the Keep to send back the files it adds.
	// A Keep in a TEE ignores both (its host is not trusted with code).
	Cache    []CacheFile `json:"cache,omitempty"`
	CachePut bool        `json:"cache_put,omitempty"`
	// Collateral lists files (e.g. the SEV-SNP VCEK and CRLs) that
	// follow as RoleCollateral streams for the Keep's evidence; the
	// Steward verifies them, so they need no trust in the host.
	Collateral []CacheFile `json:"collateral,omitempty"`
	// VolumeKeys is keep.Options.VolumeKeys: the volume keys of sealed
	// dir entries whose key the host holds (key = "file:…", development
	// only), by key spec. The Keep's sealed source checks each.
	VolumeKeys map[string][]byte `json:"volume_keys,omitempty"`
	// CompileSlowdown is keep.Options.CompileSlowdown: the host runs the
	// Keep under software emulation (TCG), where compiling takes ten to
	// twenty times as long. Only a deadline's length: a host can slow a
	// Keep down anyway.
	CompileSlowdown int `json:"compile_slowdown,omitempty"`
}

// CacheFile names one file of the compilation cache or of the collateral.
type CacheFile struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// Log is one log record of the Keep.
type Log struct {
	Level int      `json:"level"`
	Msg   string   `json:"msg"`
	Attrs []string `json:"attrs,omitempty"` // key, value, key, value, …
}

// Exit is the Keep's outcome, as keep.Run returned it.
type Exit struct {
	Code int `json:"code"`
	// Error is the run's error text, clipped by the Keep so that the
	// frame fits MaxPayload (an error can be longer: a trap's backtrace
	// names functions as the module's name section does).
	Error string `json:"error,omitempty"`
}

// Stream roles (Open.Role).
const (
	RoleConfig     = "config"     // host → Keep: Enarx.toml
	RoleWasm       = "wasm"       // host → Keep: the module
	RoleBundle     = "bundle"     // host → Keep: a registry bundle
	RoleCache      = "cache"      // host → Keep: a compilation cache file
	RoleCollateral = "collateral" // host → Keep: an evidence collateral file
	RoleFile       = "file"       // host → Keep: the stream of [[files]] entry FD
	RoleSteward    = "steward"    // Keep → host: a connection to the Steward
	RoleCachePut   = "cache-put"  // Keep → host: a new compilation cache file
)

// Open describes a new stream.
type Open struct {
	Role string `json:"role"`
	// FD is the [[files]] index for RoleFile.
	FD int `json:"fd,omitempty"`
	// Name is the file name for RoleCache, RoleCachePut and
	// RoleCollateral.
	Name string `json:"name,omitempty"`
	// Peer is the remote address of a connection (informational).
	Peer string `json:"peer,omitempty"`
	// Filetype is the WASI filetype of a stdio stream's host side.
	Filetype uint8 `json:"filetype,omitempty"`
}

// Encode marshals a message.
func Encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own message types are encoded; they always marshal.
		panic(fmt.Sprintf("channel: encoding %T: %v", v, err))
	}
	return b
}

// Decode unmarshals a message strictly: unknown fields and trailing data
// are errors (the peer is hostile; a version bump adds fields).
func Decode(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return violation("malformed %T: %v", v, err)
	}
	// Not d.More, which reports no more input before a '}' or ']'.
	if _, err := d.Token(); err != io.EOF {
		return violation("trailing data after %T", v)
	}
	return nil
}

// ValidFileName reports whether n may name a cache or collateral file: a
// relative slash-separated path of one or two non-empty segments, with no
// "." or ".." segment, no backslash and no control character. Both sides
// check it before touching their file system.
func ValidFileName(n string) bool {
	if n == "" || len(n) > 255 {
		return false
	}
	segs := strings.Split(n, "/")
	if len(segs) > 2 {
		return false
	}
	for _, seg := range segs {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		for _, r := range seg {
			if r < 0x20 || r == 0x7f || r == '\\' {
				return false
			}
		}
	}
	return true
}
