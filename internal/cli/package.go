package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// PLACEHOLDER: replaced by the owner of the `package` command.
func newPackageCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "package",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("package: not implemented yet")
		},
	}
}
