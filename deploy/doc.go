// Package deploy holds what a cluster operator installs to run Keeps under
// Kubernetes: RuntimeClasses per Keep backend (runtimeclass/), the
// containerd runtimes they name (containerd/enarx.toml) and the shim's
// options per backend (shim/); and the Steward and Drawbridge deployment:
// their images (images/, reproducible static builds) and a Kustomize base
// with overlays and a sample Keep pod (k8s/). It has no code; its tests
// validate the files against what reads them (containerd, the shim, the
// k8s.io/api types, the real binaries). See docs/kubernetes.md and
// docs/deploy.md.
package deploy
