package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// PLACEHOLDER: replaced by the owner of the `deploy` command.
func newDeployCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "deploy",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("deploy: not implemented yet")
		},
	}
}
