// Package cli implements the enarx command line (cobra). It runs on the
// untrusted host: it parses flags, picks a backend and opens what Enarx.toml
// names; everything that must be trusted happens inside the Keep.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/enarx-go/enarx/internal/version"
	"github.com/enarx-go/enarx/keep"
)

// ExitError makes Execute exit with Code without printing anything more
// (the message, if any, was already printed).
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// usageError is a command line enarx does not accept — a flag the command
// does not have or a flag value that does not parse, arguments it does not
// take, an unknown command — as opposed to a run that failed. Execute
// exits with status 2 for it, as upstream's argument parser does.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// markUsageErrors makes the flag parsing and argument checks of cmd and
// its subcommands report usageErrors.
func markUsageErrors(cmd *cobra.Command) {
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	if check := cmd.Args; check != nil {
		cmd.Args = func(c *cobra.Command, args []string) error {
			if err := check(c, args); err != nil {
				return &usageError{err}
			}
			return nil
		}
	}
	for _, c := range cmd.Commands() {
		markUsageErrors(c)
	}
}

// exactArgs is cobra.ExactArgs(n) with an error that says what the
// command takes, from its Use line ("enarx package info takes
// HOST/USER/REPO:TAG[@sha-256:DIGEST], got 2 arguments"), where cobra's
// says "accepts 1 arg(s), received 2".
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == n {
			return nil
		}
		takes := strings.Join(strings.Fields(cmd.Use)[1:], " ")
		if takes == "" {
			takes = "no arguments"
		}
		got := fmt.Sprintf("%d arguments", len(args))
		if len(args) == 1 {
			got = "1 argument"
		}
		return fmt.Errorf("%s takes %s, got %s", cmd.CommandPath(), takes, got)
	}
}

// globals are the top-level flags.
type globals struct {
	logLevel string
	logger   *slog.Logger
}

// NewRoot returns the enarx root command.
func NewRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "enarx",
		Short:         "Run WebAssembly workloads in attested Keeps",
		Version:       version.Version + " (engines: " + strings.Join(keep.Engines(), ", ") + ")",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			l, err := newLogger(cmd.ErrOrStderr(), g.logLevel, valueSource(cmd, "log-level", "ENARX_LOG"))
			if err != nil {
				return err
			}
			g.logger = l
			slog.SetDefault(l)
			return nil
		},
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", envOr("ENARX_LOG", "warn"),
		"log level: debug, info, warn, error (env ENARX_LOG)")
	root.AddCommand(
		newRunCmd(g),
		newDeployCmd(g),
		newConfigCmd(g),
		newPlatformCmd(g),
		newPackageCmd(g),
		newRepoCmd(g),
		newUserCmd(g),
	)
	root.AddCommand(hiddenCommands(g)...)
	markUsageErrors(root)
	return root
}

// Execute runs the CLI and returns the process exit code.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := NewRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	if ctx.Err() != nil {
		// Interrupted (Ctrl-C, SIGTERM): 130 and no message, whatever the
		// command was doing; the user asked for it.
		return 130
	}
	fmt.Fprintf(stderr, "Error: %s\n", terminalSafe(err.Error()))
	var ue *usageError
	// The root runs nothing itself (it is not runnable): an error that
	// ends there, past its typed flag errors, is cobra's unknown command,
	// found before any command runs.
	if errors.As(err, &ue) || cmd == root {
		return 2
	}
	return 1
}

// newLogger logs at level to w; source is the flag or variable the level
// came from (valueSource).
func newLogger(w io.Writer, level, source string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, &usageError{fmt.Errorf("invalid %s %q: use debug, info, warn or error", source, level)}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// terminalSafe replaces the control characters of an error message, except
// newline and tab, so that the text it carries from elsewhere (a registry's
// redirect target, the names in a TLS certificate a network attacker
// presents, a workload's trap message) cannot drive the terminal: C0
// controls (ESC), DEL, C1 controls (U+0080–U+009F, which some terminals obey
// as escapes) and invalid UTF-8 (a lone 0x9b is CSI to an 8-bit terminal)
// become '?' or U+FFFD.
func terminalSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || r >= ' ' && r != 0x7f && !(r >= 0x80 && r < 0xa0) {
			return r
		}
		return '?'
	}, s)
}
