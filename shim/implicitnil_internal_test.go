package shim

import (
	"strings"
	"testing"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/backend/sandbox"
)

// TestImplicitNilRefused: a node whose runtime options name no backend
// never falls back to nil (the workload in the root keep host) by
// itself; before, backend.Select's last resort ran it there silently.
func TestImplicitNilRefused(t *testing.T) {
	if err := refuseImplicitNil("", backend.Nil{}); err == nil || !strings.Contains(err.Error(), `backend = "nil"`) {
		t.Errorf("nil chosen by default: %v, want a refusal naming the option", err)
	}
	if err := refuseImplicitNil(backend.NilName, backend.Nil{}); err != nil {
		t.Errorf("nil named by the operator: %v", err)
	}
	if err := refuseImplicitNil("", sandbox.Backend{}); err != nil {
		t.Errorf("sandbox chosen by default: %v", err)
	}
}
