package shim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/enarx-go/enarx/drawbridge/client"
	"github.com/enarx-go/enarx/internal/readlimit"
)

// PackageEnv is the container environment variable that names a Drawbridge
// package for the task to run instead of a module in the image:
// HOST/USER/REPO:TAG[@sha-256:DIGEST] or
// https://HOST/api/v0.1.0/USER/REPO/_tag/TAG[@sha-256:DIGEST], the forms
// `enarx deploy` takes. It may come from the image's ENV (an image that
// pins its package) or from the pod's (or ctr's) env; the last entry wins,
// as in a process environment.
//
// With it, the image's root is not read: the entrypoint (args[0]) is only
// the program name, and the remaining args follow the package's
// Enarx.toml args, as they follow a module's.
const PackageEnv = "ENARX_PACKAGE"

// DefaultPackageCacheDir is where the shim caches verified package nodes
// (by digest) unless the runtime options name another directory.
const DefaultPackageCacheDir = "/var/cache/enarx/drawbridge"

// fetchTimeout bounds the download of one package at task creation.
const fetchTimeout = 5 * time.Minute

// maxTokenFile bounds the Drawbridge token file of the runtime options.
const maxTokenFile = 64 << 10

// PackageOptions are the runtime options for tasks that run a Drawbridge
// package (PackageEnv); they are part of Options' TOML.
//
//	drawbridge_hosts = ["drawbridge.example.com"]         # the registries a pod may name;
//	                                                       # default: any (anonymous only)
//	drawbridge_ca_bundle = "/etc/enarx/drawbridge-ca.pem"  # PEM; default: the system roots
//	drawbridge_token_file = "/etc/enarx/drawbridge-token"  # bearer token for private
//	                                                       # repositories of drawbridge_hosts
//	                                                       # (required with it); default: anonymous
//	package_cache_dir = "/var/cache/enarx/drawbridge"
//	no_package_cache = false
type PackageOptions struct {
	// DrawbridgeHosts are the registries ("name" or "name:port", as in
	// PackageEnv; ":443" is the default port) a pod's PackageEnv may name.
	// The pod chooses the host, and the shim fetches from it on the
	// node's network with the node's token: with a token file, the hosts
	// it is for must be named, or the token would go to whichever
	// registry a pod names. Empty (allowed only without a token): any.
	DrawbridgeHosts     []string `toml:"drawbridge_hosts"`
	DrawbridgeCABundle  string   `toml:"drawbridge_ca_bundle"`
	DrawbridgeTokenFile string   `toml:"drawbridge_token_file"`
	PackageCacheDir     string   `toml:"package_cache_dir"`
	NoPackageCache      bool     `toml:"no_package_cache"`
}

// check refuses a token file without the registries it is for.
func (o *PackageOptions) check() error {
	if o.DrawbridgeTokenFile != "" && len(o.DrawbridgeHosts) == 0 {
		return errors.New("runtime options: drawbridge_token_file needs drawbridge_hosts, the registries the token is for: " +
			"a pod names the registry in " + PackageEnv + ", and the shim would send the node's token to any registry a pod names")
	}
	for _, h := range o.DrawbridgeHosts {
		if h == "" || strings.ContainsAny(h, "/@ ") {
			return fmt.Errorf("runtime options: drawbridge_hosts: %q is not a registry host; use \"name\" or \"name:port\"", h)
		}
	}
	return nil
}

// allowHost refuses a package host that the runtime options'
// drawbridge_hosts do not name (any host when it is empty and there is no
// token).
func (o *PackageOptions) allowHost(host string) error {
	if err := o.check(); err != nil {
		return err
	}
	if len(o.DrawbridgeHosts) == 0 {
		return nil
	}
	for _, h := range o.DrawbridgeHosts {
		if registryKey(h) == registryKey(host) {
			return nil
		}
	}
	return fmt.Errorf("%s names the registry %s, which this node does not allow: the node's operator allows a registry by naming it in drawbridge_hosts of the RuntimeClass's runtime options (allowed: %s)",
		PackageEnv, host, strings.Join(o.DrawbridgeHosts, ", "))
}

// registryKey is a registry host as compared: lower case, without the
// default port.
func registryKey(h string) string {
	return strings.TrimSuffix(strings.ToLower(h), ":443")
}

// packageOf returns the package the spec's env names (the last
// PackageEnv entry), if any.
func packageOf(spec *specs.Spec) (string, bool) {
	if spec.Process == nil {
		return "", false
	}
	pkg, ok := "", false
	for _, kv := range spec.Process.Env {
		if v, found := strings.CutPrefix(kv, PackageEnv+"="); found {
			pkg, ok = v, true
		}
	}
	return pkg, ok
}

// parsePackage parses a PackageEnv value: the registry forms of `enarx
// deploy` (a file:// package would be the node's file, not the pod's).
func parsePackage(s string) (client.PackageSpec, error) {
	if s == "" {
		return client.PackageSpec{}, fmt.Errorf("%s is empty: set it to HOST/USER/REPO:TAG[@sha-256:DIGEST]", PackageEnv)
	}
	if scheme, _, ok := strings.Cut(s, "://"); ok {
		if !strings.EqualFold(scheme, "https") {
			return client.PackageSpec{}, fmt.Errorf("%s=%q: unsupported scheme %s; use HOST/USER/REPO:TAG[@sha-256:DIGEST] or https://HOST/api/v0.1.0/USER/REPO/_tag/TAG", PackageEnv, s, scheme)
		}
		p, err := client.ParsePackageURL(s)
		if err != nil {
			return client.PackageSpec{}, fmt.Errorf("%s: %w", PackageEnv, err)
		}
		return p, nil
	}
	p, err := client.ParsePackageSpec(s)
	if err != nil {
		return client.PackageSpec{}, fmt.Errorf("%s: %w", PackageEnv, err)
	}
	return p, nil
}

// loadPackage fetches the package pkg names into a bundle, as `enarx
// deploy` does (drawbridge/client's FetchBundle, with the runtime options'
// CA bundle, token and cache), and returns the task's workload.
//
// The shim fetches on the node's network, as containerd pulls images, not
// in the task's network namespace (ctr run's new one has only a loopback
// interface). It trusts nothing it fetched: the bundle goes to the Keep,
// which verifies the whole chain from the tag down (and the pin, if any)
// before anything runs (keep.Workload.Bundle); the host's checks only fail
// early. The fetched Enarx.toml serves the keep host only to open the host
// resources it names. The container's env reaches the workload after the
// [env] of the package's Enarx.toml (which the Keep verifies, and whose
// values win a clash), as for an image's module.
func loadPackage(ctx context.Context, pkg string, spec *specs.Spec, o *Options) (*workload, error) {
	if spec.Process.Terminal {
		return nil, errors.New("a Keep has no terminal: run the container without a TTY (no -t / tty: true)")
	}
	p, err := parsePackage(pkg)
	if err != nil {
		return nil, err
	}
	if err := o.allowHost(p.Host); err != nil {
		return nil, err
	}
	var ca []byte
	if o.DrawbridgeCABundle != "" {
		if ca, err = os.ReadFile(o.DrawbridgeCABundle); err != nil {
			return nil, fmt.Errorf("runtime options: drawbridge_ca_bundle: %w", err)
		}
	}
	var token string
	if o.DrawbridgeTokenFile != "" {
		b, err := readlimit.File(o.DrawbridgeTokenFile, maxTokenFile)
		if err != nil {
			return nil, fmt.Errorf("runtime options: drawbridge_token_file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	c, err := client.New(p.Host, client.Options{CABundle: ca, Token: token})
	if err != nil {
		return nil, fmt.Errorf("the Drawbridge client for %s: %w", p.Host, err)
	}
	var cache *client.Cache
	if !o.NoPackageCache {
		dir := o.PackageCacheDir
		if dir == "" {
			dir = DefaultPackageCacheDir
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("the package cache (runtime options: package_cache_dir): %w", err)
		}
		cache = &client.Cache{Dir: dir}
	}
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	f, err := c.FetchBundle(ctx, p, cache)
	if err != nil {
		return nil, fmt.Errorf("fetching the Drawbridge package %s (%s): %w", p, PackageEnv, err)
	}
	w := &workload{bundle: f.Bundle, config: f.Config, net: netOf(spec)}
	if w.env, err = containerEnv(spec); err != nil {
		return nil, err
	}
	if len(spec.Process.Args) > 1 {
		w.args = spec.Process.Args[1:]
	}
	return w, nil
}
