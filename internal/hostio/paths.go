package hostio

import (
	"path/filepath"
	"strings"

	"github.com/enarx-go/enarx/config"
)

// HostPath is a host path an Enarx.toml asks the host to open for the
// workload: the directory of a host or sealed dir entry (Open), or the key
// file of a sealed entry's "file:" key (VolumeKeys).
type HostPath struct {
	Path string
	// What is "directory" or "volume key file".
	What string
	// Index is the entry's place in [[files]], Name its name and Source
	// its source.
	Index  int
	Name   string
	Source config.Source
	// DotDot is set when Path has a ".." element: NotAllowed refuses
	// it whatever the allowed list says (see there).
	DotDot bool
}

// HostPaths lists the host paths cfg names, in [[files]] order.
func HostPaths(cfg *config.Config) []HostPath {
	var ps []HostPath
	for i, f := range cfg.Files {
		if f.Kind != config.KindDir || f.Dir == nil || f.Dir.Source == config.SourceMemory {
			continue
		}
		ps = append(ps, HostPath{Path: f.Dir.HostPath, What: "directory", Index: i, Name: f.Name, Source: f.Dir.Source})
		if k, ok := strings.CutPrefix(f.Dir.Key, config.KeyFilePrefix); ok {
			ps = append(ps, HostPath{Path: k, What: "volume key file", Index: i, Name: f.Name, Source: f.Dir.Source})
		}
	}
	return ps
}

// NotAllowed returns the first host path cfg names that allowed does not
// name exactly (both compared after filepath.Clean: a path is allowed as a
// whole, never as a prefix, so that nothing beneath it — a symbolic link
// planted there — stands for another), or nil. Callers whose Enarx.toml
// is not their user's own (a registry package's, a Kubernetes pod's)
// refuse to open the paths it names without the user's consent.
//
// A path with a ".." element is never allowed (DotDot is set): Clean
// drops "x/.." as text, but Open and VolumeKeys hand the path to the
// kernel, which resolves ".." after following x. "/srv/app/x/.." cleans
// to an allowed "/srv/app", yet names the parent of wherever x points
// when x is a symbolic link: one the workload, given /srv/app, made
// there itself (path_symlink takes relative targets such as
// "../../../home/user").
func NotAllowed(cfg *config.Config, allowed []string) *HostPath {
	ok := make(map[string]bool, len(allowed))
	for _, p := range allowed {
		ok[filepath.Clean(p)] = true
	}
	for _, p := range HostPaths(cfg) {
		if hasDotDot(p.Path) {
			p.DotDot = true
			return &p
		}
		if !ok[filepath.Clean(p.Path)] {
			return &p
		}
	}
	return nil
}

// hasDotDot reports whether p has a ".." element.
func hasDotDot(p string) bool {
	for _, e := range strings.Split(p, "/") {
		if e == ".." {
			return true
		}
	}
	return false
}
