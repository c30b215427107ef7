package keep

import (
	"errors"

	"github.com/enarx-go/enarx/drawbridge/bundle"
)

// openBundle verifies a registry package bundle inside the Keep (see
// package drawbridge/bundle) and makes it the workload: Wasm, Config and
// Package then come only from the verified bytes, and Package (the root
// digest the tag entry names) goes into the Keep's workload identity.
func openBundle(w *Workload) error {
	if w.Bundle == nil {
		return nil
	}
	if len(w.Wasm) != 0 || len(w.Config) != 0 || w.Package != "" {
		return errors.New("workload has both a package bundle and a module, config or package digest; refusing to guess which to run")
	}
	pkg, err := bundle.Verify(w.Bundle)
	if err != nil {
		return err
	}
	w.Wasm, w.Config, w.Package, w.Bundle = pkg.Wasm, pkg.Config, pkg.Digest, nil
	w.ConfigName = bundle.ConfigName
	if pkg.Source != "" {
		w.ConfigName = pkg.Source + "/" + bundle.ConfigName
	}
	return nil
}
