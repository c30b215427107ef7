package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// PLACEHOLDER: replaced by the owner of the `run` command.
func newRunCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "run",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("run: not implemented yet")
		},
	}
}
