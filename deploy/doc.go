// Package deploy holds what a cluster operator installs to run Keeps under
// Kubernetes: RuntimeClasses per Keep backend (runtimeclass/), the
// containerd runtimes they name (containerd/enarx.toml) and the shim's
// options per backend (shim/). It has no code; its tests validate the
// files against what reads them. See docs/kubernetes.md.
package deploy
