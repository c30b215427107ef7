package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// PLACEHOLDER: replaced by the owner of the `repo` command.
func newRepoCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "repo",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("repo: not implemented yet")
		},
	}
}
