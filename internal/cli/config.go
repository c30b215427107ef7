package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// PLACEHOLDER: replaced by the owner of the `config` command.
func newConfigCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "config",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("config: not implemented yet")
		},
	}
}
