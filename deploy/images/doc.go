// Package images holds the container image builds of Steward and
// Drawbridge: a Dockerfile per image and gobuild.sh, the reproducible
// static Go build they run. It has no code; its test runs gobuild.sh twice
// per binary, the second time from an empty build cache, and requires
// identical bytes and a static executable. See docs/deploy.md.
package images
