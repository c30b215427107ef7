package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// PLACEHOLDER: replaced by the owner of the `user` command.
func newUserCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "user",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("user: not implemented yet")
		},
	}
}
