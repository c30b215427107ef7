package cli

import (
	"github.com/spf13/cobra"

	"github.com/enarx-go/enarx/backend/sandbox"
)

// hiddenCommands returns internal commands that are not shown in help: the
// sandbox backend's Keep process entry point, which the backend starts by
// re-executing this binary (it reads its instructions from fd 3, not from
// the command line).
func hiddenCommands(g *globals) []*cobra.Command {
	return []*cobra.Command{{
		Use:                sandbox.KeepArg,
		Hidden:             true,
		DisableFlagParsing: true,
		Args:               cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if code := sandbox.KeepMain(sandbox.RunKeep); code != 0 {
				return &ExitError{Code: code}
			}
			return nil
		},
	}}
}
