package shim

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/enarx-go/enarx/keep"
)

// containerEnv is the OCI spec's env ("NAME=value" entries: the image's
// ENV, then the pod's or ctr's), which the Keep adds to the workload's
// environment after Enarx.toml's [env] (keep.Options.Env). A name
// Enarx.toml sets keeps the file's value: the workload owner's config is
// not overridden by the host. The image's Enarx.toml goes to the Keep
// unchanged, so the config digest in the Keep's certificate is that of
// the image's file.
//
// The Keep checks the entries (keep.ValidateEnv); checking them here
// refuses the container at create, with the reason in ctr's or the
// kubelet's output, before a Keep starts.
func containerEnv(spec *specs.Spec) ([]string, error) {
	if spec.Process == nil {
		return nil, nil
	}
	if err := keep.ValidateEnv(spec.Process.Env); err != nil {
		return nil, fmt.Errorf("the container's environment: %w", err)
	}
	return spec.Process.Env, nil
}
