package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/enarx-go/enarx/config"
)

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Create and check Enarx.toml workload configurations",
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "init",
			Short: "Write a commented Enarx.toml template to the current directory",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return configInit("Enarx.toml")
			},
		},
		&cobra.Command{
			Use:   "check [FILE]",
			Short: "Validate an Enarx.toml and print the file descriptor table it defines",
			Long: "Validate an Enarx.toml (default ./Enarx.toml) exactly as a Keep would, and print\n" +
				"the resulting WASI file descriptor table, FD_COUNT and FD_NAMES.",
			Args: cobra.MaximumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				path := "Enarx.toml"
				if len(args) == 1 {
					path = args[0]
				}
				c, err := config.Load(path)
				if err != nil {
					return err
				}
				for _, w := range c.Warnings {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
				}
				return printFDTable(cmd.OutOrStdout(), c)
			},
		},
	)
	return cmd
}

// configInit writes the template to path, refusing to overwrite anything
// (O_EXCL, so a file created concurrently is not clobbered either).
func configInit(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%q does already exist.", path) // upstream's wording
	}
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	if _, err := io.WriteString(f, config.Template); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func printFDTable(w io.Writer, c *config.Config) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FD\tKIND\tNAME\tPROT\tENDPOINT\tTLS")
	for i, f := range c.Files {
		endpoint := ""
		switch f.Kind {
		case config.KindListen:
			endpoint = "listen " + hostPort(f.Addr, f.Port)
		case config.KindConnect:
			endpoint = "connect " + hostPort(f.Host, f.Port)
		case config.KindDir:
			endpoint = dirSummary(f.Dir)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", i, f.Kind, strconv.Quote(f.Name), dash(string(f.Prot)), dash(endpoint), dash(tlsSummary(f)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nFD_COUNT=%d\nFD_NAMES=%s\n", len(c.Files), strings.Join(c.FDNames(), ":"))
	if c.Steward != "" {
		fmt.Fprintf(w, "steward: %s\n", c.Steward)
	} else {
		fmt.Fprintln(w, "steward: none (TLS uses a self-signed certificate)")
	}
	if len(c.Args) > 0 {
		q := make([]string, len(c.Args))
		for i, a := range c.Args {
			q[i] = strconv.Quote(a)
		}
		fmt.Fprintf(w, "args: main.wasm %s\n", strings.Join(q, " "))
	}
	for _, e := range c.Env {
		fmt.Fprintf(w, "env: %s\n", strconv.Quote(e.Name+"="+e.Value))
	}
	return nil
}

// dirSummary describes a kind = "dir" entry: guest path, source, where
// its files are, read-only.
func dirSummary(d *config.DirOptions) string {
	s := strconv.Quote(d.GuestPath) + " " + string(d.Source)
	switch d.Source {
	case config.SourceMemory:
		s += fmt.Sprintf(" size=%d", d.Size)
	case config.SourceHost:
		s += " " + strconv.Quote(d.HostPath) + " (plaintext, untrusted)"
	case config.SourceSealed:
		s += " " + strconv.Quote(d.HostPath) + " key=" + strconv.Quote(d.Key)
		if d.MinVersion > 0 {
			s += fmt.Sprintf(" min_version=%d", d.MinVersion)
		}
		if d.VolumeID != "" {
			s += " volume_id=" + d.VolumeID
		}
	}
	if d.ReadOnly {
		s += " readonly"
	}
	return s
}

func hostPort(h string, p uint16) string {
	if strings.Contains(h, ":") {
		return "[" + h + "]:" + strconv.Itoa(int(p))
	}
	return h + ":" + strconv.Itoa(int(p))
}

func tlsSummary(f config.File) string {
	if f.TLS == nil {
		return ""
	}
	var parts []string
	switch f.Kind {
	case config.KindListen:
		parts = append(parts, "client_auth="+f.TLS.ClientAuth)
		if f.TLS.ClientCA != "" {
			parts = append(parts, "client_ca=inline")
		}
	case config.KindConnect:
		if f.TLS.CA != "" {
			parts = append(parts, "ca=inline")
		} else {
			parts = append(parts, "ca=system")
		}
		if f.TLS.ServerName != "" {
			parts = append(parts, "server_name="+strconv.Quote(f.TLS.ServerName))
		}
	}
	if len(f.TLS.ALPN) > 0 {
		parts = append(parts, "alpn="+strings.Join(f.TLS.ALPN, ","))
	}
	return strings.Join(parts, " ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
