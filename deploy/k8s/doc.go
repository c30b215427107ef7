// Package k8s holds the Kustomize base and overlays that deploy Steward and
// Drawbridge on Kubernetes (base/: both replicated, Drawbridge on an
// S3-compatible bucket; overlays/file-store/: Drawbridge on a file://
// bucket, one replica; sample/: a Keep in a pod through the enarx
// RuntimeClass). It has no code; its tests render every kustomization,
// decode the result strictly into the Kubernetes API types, tie the
// cross-references together and run the real binaries with the rendered
// arguments. See docs/deploy.md.
package k8s
