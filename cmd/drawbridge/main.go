// Command drawbridge runs the Drawbridge package registry (see
// docs/drawbridge.md). All logic lives in drawbridge/server.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/enarx-go/enarx/drawbridge/server"
	"github.com/enarx-go/enarx/internal/version"
)

func main() {
	var o server.Options
	var level string
	var perIP int
	cmd := &cobra.Command{
		Use:   "drawbridge [@CONFIG.toml]",
		Short: "Serve the Drawbridge package registry over HTTPS",
		Long: `Serve the Drawbridge package registry over HTTPS.

Production: drawbridge --store DIR|BUCKET-URL --cert C --key K [--ca CA]
                       --oidc-issuer URL --oidc-audience AUD [--addr HOST:PORT]
            drawbridge @drawbridge.toml   (keys are the long flag names)
Local use:  drawbridge --dev --store DIR   (self-signed TLS and a local token;
            see DIR/dev-ca.pem and DIR/dev-token)`,
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			conf, err := configArg(args)
			if err != nil {
				return err
			}
			if conf != "" {
				if err := applyConfigFile(cmd.Flags(), conf); err != nil {
					return err
				}
			}
			var l slog.Level
			if err := l.UnmarshalText([]byte(level)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
			if o.MaxConns < 1 {
				return fmt.Errorf("--max-connections %d: want at least 1", o.MaxConns)
			}
			if o.MaxDirectoryBuffers < server.MaxDirectorySize {
				return fmt.Errorf("--max-directory-buffers %d: want at least %d (the largest directory node)", o.MaxDirectoryBuffers, server.MaxDirectorySize)
			}
			if o.DirectoryBufferWait < 0 {
				return fmt.Errorf("--directory-buffer-wait %v: want 0 (refuse at once) or more", o.DirectoryBufferWait)
			}
			if o.DirectoryBufferWait == 0 {
				o.DirectoryBufferWait = -1 // the store's "no wait"
			}
			if o.MaxUploadBuffers < 0 {
				return fmt.Errorf("--max-upload-buffers %d: want 0 (no upload pipelined) or more", o.MaxUploadBuffers)
			}
			if o.MaxUploadBuffers == 0 {
				o.MaxUploadBuffers = -1 // the store's "none"
			}
			switch {
			case perIP < 0:
				return fmt.Errorf("--max-connections-per-ip %d: want 0 (no bound) or more", perIP)
			case perIP == 0:
				o.MaxConnsPerIP = -1 // none
			default:
				o.MaxConnsPerIP = perIP
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return server.Run(ctx, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Addr, "addr", "", "listen address (default "+server.DefaultAddr+", or "+server.DefaultDevAddr+" with --dev)")
	f.StringVar(&o.Store, "store", "", "store: an existing directory, or a bucket URL (s3://bucket?region=…, file:///path)")
	f.StringVar(&o.Cert, "cert", "", "PEM server certificate chain")
	f.StringVar(&o.Key, "key", "", "PEM server private key (PKCS#1, PKCS#8 or SEC1)")
	f.StringVar(&o.CA, "ca", "", "PEM CA certificates whose client certificates may read trees of any repository")
	f.BoolVar(&o.RequireAttestedHardware, "ca-require-hardware", false, "client certificates read private trees only if they record hardware-backed evidence, no TEE debug mode and no Steward debug mode (attested-as extension)")
	f.StringVar(&o.OIDCIssuer, "oidc-issuer", "", "OpenID Connect issuer URL (discovery at startup, keys refreshed as they rotate)")
	f.StringVar(&o.OIDCAudience, "oidc-audience", "", "required token audience")
	f.BoolVar(&o.Dev, "dev", false, "run a local development registry with its own CA and token issuer (NOT for production)")
	f.Int64Var(&o.MaxUploadSize, "max-upload-size", server.DefaultMaxUploadSize, "largest tree node accepted, in bytes")
	f.IntVar(&o.MaxConns, "max-connections", server.DefaultMaxConns, "most connections held open; at the bound an idle one is closed for a new one, else the new one waits")
	f.IntVar(&perIP, "max-connections-per-ip", server.DefaultMaxConnsPerIP, "most connections held open from one IPv4 address or IPv6 /64 (an idle one is closed for a new one, else the new one); 0: no such bound (behind a proxy that hides client addresses)")
	f.Int64Var(&o.MaxDirectoryBuffers, "max-directory-buffers", server.DefaultMaxDirectoryBuffers, "most bytes of directory node uploads held in memory at once (each holds its declared length while it is read, parsed and stored); at least 16 MiB")
	f.DurationVar(&o.DirectoryBufferWait, "directory-buffer-wait", server.DefaultDirectoryBufferWait, "how long a directory upload waits for room under --max-directory-buffers before it is refused with 503 and Retry-After; 0: refuse at once")
	f.Int64Var(&o.MaxUploadBuffers, "max-upload-buffers", server.DefaultMaxUploadBuffers, "most bytes of buffers node uploads of 1 MiB or more take, in all, to hash and write their body pipelined (about 4.5 MiB each; more on S3 from 16 MiB); one that finds no room is copied with a 64 KiB buffer, more slowly; 0: none is pipelined")
	f.BoolVar(&o.VerifyAllDigests, "verify-all-digests", false, "verify uploaded files against every digest of their entry, not only sha-256 (slower)")
	f.BoolVar(&o.VerifyExisting, "verify-existing", false, "before serving, verify the trees of stored tags that are not yet visible (e.g. an upstream store), hashing every node this server has not verified, and make those that verify visible")
	f.StringVar(&level, "log-level", "info", "log level: debug, info, warn, error")
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "drawbridge:", err)
		os.Exit(1)
	}
}
