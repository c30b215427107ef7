package cli

import (
	"github.com/spf13/cobra"

	"github.com/enarx-go/enarx/backend/sandbox"
	"github.com/enarx-go/enarx/keep"
)

// hiddenCommands returns internal commands that are not shown in help: the
// sandbox backend's Keep process entry point, which the backend starts by
// re-executing this binary (it reads its instructions from fd 3).
// cmd/enarx starts a Keep before the command line is parsed
// (sandbox.ServeKeeps: the Keep would otherwise build this whole command
// tree first); the command remains for any other binary built on Execute.
func hiddenCommands(g *globals) []*cobra.Command {
	return []*cobra.Command{{
		Use:                sandbox.KeepArg,
		Hidden:             true,
		DisableFlagParsing: true,
		Args:               cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if code := sandbox.KeepMain(keep.Run); code != 0 {
				return &ExitError{Code: code}
			}
			return nil
		},
	}}
}
