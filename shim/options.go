package shim

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"

	runtimeoptions "github.com/containerd/containerd/pkg/runtimeoptions/v1"
	"github.com/pelletier/go-toml/v2"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/enarx-go/enarx/keep"
)

// DefaultCacheDir is the compilation cache root of Keeps the shim starts,
// unless the runtime options name another: the shim runs as root, often
// without a home directory.
const DefaultCacheDir = "/var/cache/enarx"

// Options are the shim's runtime options: a TOML file containerd names in
// the runtime's options (CRI: options.ConfigPath, or the file's text in
// options.ConfigBody; ctr run: --runtime-config-path). Every field is
// optional.
//
//	backend = "sandbox"        # default: ENARX_BACKEND of the shim, else the
//	                           # most protective available and configured
//	                           # (never nil unless named)
//	engine = "wazero"          # default: the fastest the Keep has
//	memory_mib = 512           # linear memory limit (default 4096)
//	cache_dir = "/var/cache/enarx"
//	no_cache = false
//	log_level = "warn"         # the keep host's diagnostics on the task's stderr
//	require_isolation = true   # refuse a Keep that lacks any of its backend's
//	                           # isolation layers (enarx run --require-isolation)
//	allow_host_paths = ["/var/lib/enarx/volumes/db"]
//	                           # host directories and volume key files an
//	                           # Enarx.toml may open (default: none)
//
// and the Drawbridge settings of PackageOptions.
type Options struct {
	Backend   string `toml:"backend"`
	Engine    string `toml:"engine"`
	MemoryMiB uint64 `toml:"memory_mib"`
	CacheDir  string `toml:"cache_dir"`
	NoCache   bool   `toml:"no_cache"`
	LogLevel  string `toml:"log_level"`
	// RequireIsolation is backend.Policy.RequireIsolation.
	RequireIsolation bool `toml:"require_isolation"`
	// AllowHostPaths are the host directories (of host and sealed dir
	// entries) and volume key files (of "file:" keys) an Enarx.toml may
	// name, each exactly (hostio.NotAllowed). The Enarx.toml is the
	// image's or the package's, chosen by whoever may create a pod, and
	// the keep host, which opens them, runs as the shim does (root, in
	// the node's mount namespace): a host directory of "/" would give a
	// workload the node. Default: none.
	AllowHostPaths []string `toml:"allow_host_paths"`
	// PackageOptions are for tasks that run a Drawbridge package
	// (PackageEnv).
	PackageOptions
}

// maxOptions bounds the runtime options file.
const maxOptions = 64 << 10

// parseOptions decodes the runtime options containerd passes to Create
// (nil: none) and fills in the defaults.
func parseOptions(a *anypb.Any) (*Options, error) {
	var body []byte
	if a != nil && len(a.GetValue()) > 0 {
		var ro runtimeoptions.Options
		if err := a.UnmarshalTo(&ro); err != nil {
			return nil, fmt.Errorf("runtime options of type %s: the enarx shim takes containerd's runtimeoptions.v1.Options (ConfigPath or ConfigBody): %w", a.GetTypeUrl(), err)
		}
		body = ro.GetConfigBody()
		if p := ro.GetConfigPath(); p != "" && len(body) == 0 {
			f, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("reading the runtime options file: %w", err)
			}
			body = f
		}
	}
	o, err := DecodeOptions(body)
	if err != nil {
		return nil, err
	}
	if o.Backend == "" {
		o.Backend = os.Getenv("ENARX_BACKEND")
	}
	if o.CacheDir == "" {
		o.CacheDir = DefaultCacheDir
	}
	return o, nil
}

// DecodeOptions decodes and checks a runtime options file: unknown keys,
// unknown engines and impossible values are errors. Empty is all defaults.
func DecodeOptions(body []byte) (*Options, error) {
	o := &Options{}
	if len(body) > maxOptions {
		return nil, fmt.Errorf("the runtime options are %d bytes, more than %d", len(body), maxOptions)
	}
	if len(body) > 0 {
		d := toml.NewDecoder(bytes.NewReader(body))
		d.DisallowUnknownFields()
		if err := d.Decode(o); err != nil {
			return nil, fmt.Errorf("runtime options: %w (known keys: backend, engine, memory_mib, cache_dir, no_cache, log_level, require_isolation, allow_host_paths, drawbridge_hosts, drawbridge_ca_bundle, drawbridge_token_file, package_cache_dir, no_package_cache)", err)
		}
	}
	if o.Engine != "" && !slices.Contains(keep.KnownEngines(), o.Engine) {
		return nil, fmt.Errorf("runtime options: engine: unknown engine %q: use %s", o.Engine, strings.Join(keep.KnownEngines(), " or "))
	}
	if err := o.PackageOptions.check(); err != nil {
		return nil, err
	}
	if o.MemoryMiB > 4096 {
		return nil, fmt.Errorf("runtime options: memory_mib: %d is above the wasm32 maximum of 4096", o.MemoryMiB)
	}
	if _, err := o.logLevel(); err != nil {
		return nil, err
	}
	return o, nil
}

// logLevel is the parsed log_level (default warn).
func (o *Options) logLevel() (slog.Level, error) {
	if o.LogLevel == "" {
		return slog.LevelWarn, nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return 0, fmt.Errorf("runtime options: log_level: %w", err)
	}
	return l, nil
}
