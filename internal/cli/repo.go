package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/enarx-go/enarx/drawbridge/client"
)

func newRepoCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "repo",
		Short: "Register and inspect repositories in a Drawbridge registry",
	}
	cmd.AddCommand(newRepoRegisterCmd(), newRepoInfoCmd())
	return cmd
}

func newRepoRegisterCmd() *cobra.Command {
	var rf registryFlags
	var private bool
	cmd := &cobra.Command{
		Use:   "register HOST/USER/REPO",
		Short: "Create a repository (public unless --private)",
		Long: `Create a repository owned by USER. Anyone can read the packages of a public
repository; a private repository's packages are readable with the owner's
token or, for tree reads, a client certificate from the registry's CA.`,
		Args: exactArgs(1),
		RunE: rf.hinted(func(cmd *cobra.Command, args []string) error {
			spec, err := client.ParseRepoSpec(args[0])
			if err != nil {
				return err
			}
			c, err := rf.client(cmd, spec.Host, true)
			if err != nil {
				return err
			}
			return c.PutRepo(cmd.Context(), spec, client.RepoConfig{Public: !private})
		}),
	}
	rf.register(cmd.Flags())
	cmd.Flags().BoolVar(&private, "private", false, "make the repository private")
	return cmd
}

func newRepoInfoCmd() *cobra.Command {
	var rf registryFlags
	cmd := &cobra.Command{
		Use:   "info HOST/USER/REPO",
		Short: `Print a repository's configuration and tags ({"config":…,"tags":[…]})`,
		Args:  exactArgs(1),
		RunE: rf.hinted(func(cmd *cobra.Command, args []string) error {
			spec, err := client.ParseRepoSpec(args[0])
			if err != nil {
				return err
			}
			c, err := rf.client(cmd, spec.Host, true)
			if err != nil {
				return err
			}
			cfg, err := c.GetRepo(cmd.Context(), spec)
			if err != nil {
				return err
			}
			tags, err := c.Tags(cmd.Context(), spec)
			if err != nil {
				return err
			}
			out, err := json.Marshal(struct {
				Config client.RepoConfig `json:"config"`
				Tags   []string          `json:"tags"`
			}{cfg, tags})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), string(jsonTerminalSafe(out)))
			return nil
		}),
	}
	rf.register(cmd.Flags())
	return cmd
}
