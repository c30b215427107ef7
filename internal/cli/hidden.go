package cli

import "github.com/spf13/cobra"

// hiddenCommands returns internal commands that are not shown in help, such
// as the sandbox backend's Keep process entry point.
func hiddenCommands(g *globals) []*cobra.Command {
	return nil
}
