package cli

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/config"
	"github.com/enarx-go/enarx/drawbridge/bundle"
	"github.com/enarx-go/enarx/drawbridge/client"
	"github.com/enarx-go/enarx/internal/hostio"
	"github.com/enarx-go/enarx/keep"
)

type deployFlags struct {
	backend      string
	engine       string
	memory       string
	noCache      bool
	cacheDir     string
	packageCache string
	noPkgCache   bool
	timeout      time.Duration
	isolation    bool
	allowHost    []string
	allowListen  []string
	allowConnect []string
	registry     registryFlags
}

func newDeployCmd(g *globals) *cobra.Command {
	f := &deployFlags{}
	cmd := &cobra.Command{
		Use:   "deploy [flags] PACKAGE",
		Short: "Run a package from a Drawbridge registry (or a local package) in a Keep",
		Long: `Run a package in a Keep. PACKAGE is one of:

  HOST/USER/REPO:TAG[@sha-256:DIGEST]     a registry package (https://HOST)
  https://HOST/api/v0.1.0/USER/REPO/_tag/TAG[@sha-256:DIGEST]
  file:///path/to/main.wasm               a module (no Enarx.toml)
  file:///path/to/dir                     dir/main.wasm with dir/Enarx.toml

For a registry package the host downloads the tag entry, the root directory,
main.wasm and Enarx.toml into a bundle; the Keep verifies the whole chain
(tag → directory → files: digests, lengths, media types, size limits, and the
pinned digest if given) before anything runs, and records the package digest
in its certificate. Verified downloads are cached by digest in the user cache
directory.

A registry package's Enarx.toml may name host directories (dir entries with
source = "host" or "sealed") and volume key files for enarx to open and hand
to the workload; enarx opens each only if you name it with --allow-host-path.
Likewise its network entries: a listen entry binds a port of your machine only
with --allow-listen PORT, and a connect entry dials from your machine only with
--allow-connect HOST:PORT (as the Enarx.toml writes them).`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case cmd.ArgsLenAtDash() >= 0:
				return errors.New(`accepts one PACKAGE and no "--": a package's workload arguments are the args of its Enarx.toml`)
			case len(args) != 1:
				return fmt.Errorf("accepts one PACKAGE, got %d arguments", len(args))
			}
			return nil
		},
		RunE: f.registry.hinted(func(cmd *cobra.Command, args []string) error {
			return deploy(cmd, g, f, args[0])
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&f.backend, "backend", os.Getenv("ENARX_BACKEND"), "Keep backend (env ENARX_BACKEND; default: the most protective available)")
	engineFlag(fl, &f.engine)
	fl.StringVar(&f.memory, "memory", "4GiB", "linear memory limit of the workload (e.g. 512MiB, 2GiB)")
	fl.BoolVar(&f.noCache, "no-cache", false, "do not use the compilation cache")
	fl.StringVar(&f.cacheDir, "cache-dir", "", "compilation cache directory (default: user cache dir/enarx/wasm)")
	fl.StringVar(&f.packageCache, "package-cache", "", "package download cache (default: user cache dir/enarx/drawbridge)")
	fl.BoolVar(&f.noPkgCache, "no-package-cache", false, "always download the package")
	fl.DurationVar(&f.timeout, "timeout", 0, "stop the Keep after this long, e.g. 30s")
	fl.BoolVar(&f.isolation, "require-isolation", false, "refuse to start a Keep that lacks any of its backend's isolation layers (sandbox; kvm under software emulation)")
	fl.StringArrayVar(&f.allowHost, "allow-host-path", nil, "let a registry package's Enarx.toml open this host directory or volume key file (repeatable; exact path)")
	fl.StringArrayVar(&f.allowListen, "allow-listen", nil, "let a registry package's Enarx.toml listen on this port of your machine (repeatable)")
	fl.StringArrayVar(&f.allowConnect, "allow-connect", nil, "let a registry package's Enarx.toml connect from your machine to HOST:PORT (repeatable; as the Enarx.toml writes the host)")
	f.registry.register(fl)
	return cmd
}

// deploySource is what a PACKAGE argument resolved to.
type deploySource struct {
	workload keep.Workload
	config   []byte // the host's copy of Enarx.toml, to open host resources
	// registry names the registry package (empty for file:// packages):
	// its Enarx.toml is not the user's and opens host paths only with
	// their consent (checkHostPaths).
	registry string
}

func deploy(cmd *cobra.Command, g *globals, f *deployFlags, arg string) error {
	limit, err := memoryFlag(f.memory)
	if err != nil {
		return err
	}
	if err := checkEngine(f.engine, valueSource(cmd, "engine", "ENARX_ENGINE")); err != nil {
		return err
	}
	src, err := resolvePackage(cmd, f, arg)
	if err != nil {
		return err
	}
	cfg := config.Default()
	if src.config != nil {
		// The host's parse only decides which host resources to open; the
		// Keep parses the (verified) bytes again itself.
		if cfg, err = config.Parse(bundle.ConfigName, src.config); err != nil {
			return err
		}
	}
	if src.registry != "" {
		if err := checkHostPaths(cfg, src.registry, f.allowHost); err != nil {
			return err
		}
		if err := checkNetwork(cfg, src.registry, f.allowListen, f.allowConnect); err != nil {
			return err
		}
	}
	b, err := selectBackend(g, f.backend, valueSource(cmd, "backend", "ENARX_BACKEND"))
	if err != nil {
		return err
	}
	g.logger.Debug("deploying", "package", arg)
	return launchKeep(cmd, b, cfg, backend.Policy{Timeout: f.timeout, RequireIsolation: f.isolation}, src.workload, keep.Options{
		Logger:      g.logger,
		CacheDir:    f.cacheDir,
		NoCache:     f.noCache,
		MemoryLimit: limit,
		Engine:      f.engine,
	})
}

// resolvePackage turns PACKAGE into a workload: local files for file://,
// a fetched bundle for registry packages.
func resolvePackage(cmd *cobra.Command, f *deployFlags, arg string) (*deploySource, error) {
	var spec client.PackageSpec
	if scheme, _, ok := strings.Cut(arg, "://"); ok {
		switch strings.ToLower(scheme) {
		case "file":
			return localPackage(arg)
		case "https":
			var err error
			if spec, err = client.ParsePackageURL(arg); err != nil {
				return nil, err
			}
		case "http":
			return nil, fmt.Errorf("unsupported scheme: http (the package would travel unprotected); use https://HOST/api/v0.1.0/USER/REPO/_tag/TAG")
		default:
			return nil, fmt.Errorf("unsupported scheme: %s; use file:///path (a module or a package directory), "+
				"https://HOST/api/v0.1.0/USER/REPO/_tag/TAG, or HOST/USER/REPO:TAG", scheme)
		}
	} else {
		var err error
		if spec, err = client.ParsePackageSpec(arg); err != nil {
			if abs, aerr := filepath.Abs(arg); aerr == nil {
				if _, serr := os.Stat(arg); serr == nil {
					// A local path: the user meant a file:// package.
					return nil, fmt.Errorf("%w; %s is a local path: deploy it as file://%s", err, arg, abs)
				}
			}
			return nil, err
		}
	}
	c, err := f.registry.client(cmd, spec.Host, false)
	if err != nil {
		return nil, err
	}
	var cache *client.Cache
	if !f.noPkgCache {
		dir := f.packageCache
		if dir == "" {
			if dir, err = client.DefaultCacheDir(); err != nil {
				return nil, err
			}
		}
		cache = &client.Cache{Dir: dir}
	}
	fetched, err := c.FetchBundle(cmd.Context(), spec, cache)
	if err != nil {
		return nil, err
	}
	src := &deploySource{workload: keep.Workload{Bundle: fetched.Bundle}, config: fetched.Config, registry: spec.String()}
	return src, nil
}

// checkHostPaths refuses a registry package whose Enarx.toml names a host
// path the user did not allow (--allow-host-path): the directory of a
// host or sealed dir entry, or a sealed entry's key file. The package
// chooses them (and, without a pin, the registry chooses the package),
// and enarx would open them with the user's rights and hand them to the
// workload: a host directory read-write by default.
func checkHostPaths(cfg *config.Config, pkg string, allowed []string) error {
	if p := hostio.NotAllowed(cfg, allowed); p != nil {
		if p.DotDot {
			return fmt.Errorf("the Enarx.toml of %s gives its workload the host %s %q (files[%d], dir %q, source = %q), a path with a \"..\" element: "+
				"enarx does not open such a path for a registry package, whatever --allow-host-path says, since a symbolic link before the \"..\" "+
				"(one the workload made, say) would send it outside the directory it appears to name; the package must name the path without \"..\"",
				pkg, p.What, p.Path, p.Index, p.Name, p.Source)
		}
		return fmt.Errorf("the Enarx.toml of %s gives its workload the host %s %q (files[%d], dir %q, source = %q); "+
			"a registry package opens host paths only with your consent: if you trust the package with it, add --allow-host-path %s",
			pkg, p.What, p.Path, p.Index, p.Name, p.Source, filepath.Clean(p.Path))
	}
	return nil
}

// checkNetwork refuses a registry package whose Enarx.toml listens on a
// port or connects to an endpoint the user did not allow (--allow-listen
// PORT, --allow-connect HOST:PORT): the host binds and dials them with the
// user's rights, so a package could otherwise serve on every interface of
// the user's machine, or reach what it reaches (services on 127.0.0.1,
// the local network).
func checkNetwork(cfg *config.Config, pkg string, listen, connect []string) error {
	if cfg == nil {
		return nil
	}
	okListen := make(map[string]bool, len(listen))
	for _, p := range listen {
		okListen[strings.TrimSpace(p)] = true
	}
	okConnect := make(map[string]bool, len(connect))
	for _, e := range connect {
		okConnect[strings.ToLower(strings.TrimSpace(e))] = true
	}
	for i, f := range cfg.Files {
		switch f.Kind {
		case config.KindListen:
			port := strconv.Itoa(int(f.Port))
			if !okListen[port] {
				addr := f.Addr
				if addr == "" {
					addr = "::"
				}
				return fmt.Errorf("the Enarx.toml of %s listens on port %s of your machine (files[%d] %q, address %s); "+
					"a registry package listens only with your consent: if you trust the package with it, add --allow-listen %s",
					pkg, port, i, f.Name, addr, port)
			}
		case config.KindConnect:
			ep := net.JoinHostPort(f.Host, strconv.Itoa(int(f.Port)))
			if !okConnect[strings.ToLower(ep)] {
				return fmt.Errorf("the Enarx.toml of %s connects from your machine to %s (files[%d] %q); "+
					"a registry package connects only with your consent: if you trust the package with it, add --allow-connect %s",
					pkg, ep, i, f.Name, ep)
			}
		}
	}
	return nil
}

// localPackage reads a file:// package: a module, or a directory with
// main.wasm and Enarx.toml (upstream requires the config there).
func localPackage(raw string) (*deploySource, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid package URL: %w", err)
	}
	if u.Host != "" && u.Host != "localhost" {
		return nil, fmt.Errorf("invalid file URL %q: only local files are supported", raw)
	}
	p := filepath.FromSlash(u.Path)
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("failed to open package: %w", err)
	}
	if !st.IsDir() {
		wasm, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("failed to open package: %w", err)
		}
		if err := checkWasm(p, wasm); err != nil {
			return nil, err
		}
		return &deploySource{workload: keep.Workload{Wasm: wasm}}, nil
	}
	wasm, err := os.ReadFile(filepath.Join(p, bundle.WasmName))
	if err != nil {
		return nil, fmt.Errorf("failed to open package main.wasm: %w", err)
	}
	if err := checkWasm(filepath.Join(p, bundle.WasmName), wasm); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(p, bundle.ConfigName)
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("failed to open package config: %w", err)
	}
	return &deploySource{workload: keep.Workload{Wasm: wasm, Config: cfg, ConfigName: cfgPath}, config: cfg}, nil
}
