package cli

import (
	"github.com/spf13/cobra"

	// The confidential-VM and microVM backends register themselves.
	_ "github.com/enarx-go/enarx/backend/microvm"
	_ "github.com/enarx-go/enarx/backend/snp"
	_ "github.com/enarx-go/enarx/backend/tdx"
)

// addTEEPlatformCommands adds `enarx platform snp …` and `enarx platform
// tdx …` (collateral caches, measurements for Steward policies).
func addTEEPlatformCommands(cmd *cobra.Command, g *globals) {
	cmd.AddCommand(newPlatformSNPCmd(g), newPlatformTDXCmd(g))
}
