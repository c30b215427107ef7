package platform

import (
	"fmt"
	"io"
	"sort"

	"github.com/enarx-go/enarx/backend"
)

// LabelPrefix starts the Kubernetes node label of each backend:
// enarx.dev/backend.<name>, "true" where `enarx platform info` passes the
// backend (enarx run --backend NAME works here), "false" where it does not.
const LabelPrefix = "enarx.dev/backend."

// Label is the node label key of backend name.
func Label(name string) string { return LabelPrefix + name }

// Labels are the report's node labels as "key=value", sorted: one per
// backend the report probes. The emulated test backends are left out: every
// node can run them, and a Steward accepts their evidence only when its
// policy names their test root, so they say nothing about the node.
func (r *Report) Labels() []string {
	var out []string
	for _, b := range r.Backends {
		if emulated(b.Name) {
			continue
		}
		out = append(out, fmt.Sprintf("%s=%t", Label(b.Name), b.Pass()))
	}
	sort.Strings(out)
	return out
}

func emulated(name string) bool {
	b, err := backend.Lookup(name)
	if err != nil {
		return false
	}
	switch b.(type) {
	case backend.Emulated, *backend.Emulated:
		return true
	}
	return false
}

// WriteLabels prints Labels one per line: the format of a
// node-feature-discovery local feature file (features.d/), and of
// `kubectl label node NODE $(enarx platform info --labels)`.
func (r *Report) WriteLabels(w io.Writer) error {
	for _, l := range r.Labels() {
		if _, err := fmt.Fprintln(w, l); err != nil {
			return err
		}
	}
	return nil
}
