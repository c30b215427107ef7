package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// PLACEHOLDER: replaced by the owner of the `platform` command.
func newPlatformCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "platform",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("platform: not implemented yet")
		},
	}
}
