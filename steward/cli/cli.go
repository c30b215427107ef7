// Package cli is the steward command line: it maps upstream Steward's flags
// and environment variables onto a steward.Config and serves it until it is
// told to stop. It trusts its command line, environment and files (the
// operator's); it does no request handling itself.
package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/kvm"
	"github.com/enarx-go/enarx/attestation/policy"
	"github.com/enarx-go/enarx/internal/keyfile"
	"github.com/enarx-go/enarx/internal/version"
	"github.com/enarx-go/enarx/steward"
)

// options are the parsed flags.
type options struct {
	key, crt    string
	port        int
	addr        string
	host        string
	sans        []string
	config      string
	tlsCert     string
	tlsKey      string
	verifyTime  string
	logLevel    string
	logFormat   string
	maxBody     int64
	maxConns    int
	maxConnsIP  int
	onListening func(net.Addr) // tests: learns the bound address
}

// envs maps flags to the environment variables upstream Steward reads.
// A flag on the command line wins over its variable.
var envs = map[string]string{
	"key":         "STEWARD_KEY",
	"crt":         "STEWARD_CRT",
	"port":        "ROCKET_PORT",
	"addr":        "ROCKET_ADDRESS",
	"host":        "RENDER_EXTERNAL_HOSTNAME",
	"san":         "STEWARD_SAN",
	"verify-time": "STEWARD_VERIFY_TIME",
	"log-level":   "STEWARD_LOG_LEVEL",
}

// Execute runs the steward command with args and returns the exit code.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newCommand(ctx, &options{})
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	expanded, err := expandArgFiles(args)
	if err != nil {
		fmt.Fprintln(stderr, "steward:", err)
		return 2
	}
	cmd.SetArgs(expanded)
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(stderr, "steward:", err)
		return 1
	}
	return 0
}

func newCommand(ctx context.Context, o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "steward",
		Short: "Attestation CA: issues certificates to Keeps that prove what they run",
		Long: `steward verifies the TEE evidence in a Keep's certificate request and issues
a short-lived certificate for the Keep's key.

Give the CA with --key and --crt, or use --host to generate an ephemeral
self-signed CA (debug mode: no-hardware evidence is accepted and every
issued certificate says so). Arguments of the form @file.toml are replaced
by the flags in that TOML table (name = value).`,
		Args:          cobra.NoArgs,
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd.Flags()); err != nil {
				return err
			}
			return run(ctx, cmd.ErrOrStderr(), o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.key, "key", "k", "", "CA private key: PEM PKCS#8 ECDSA P-256/P-384, a file or the PEM itself (env STEWARD_KEY)")
	f.StringVarP(&o.crt, "crt", "c", "", "CA certificate (PEM; the CA certificate first, then its issuers), a file or the PEM itself (env STEWARD_CRT)")
	f.IntVarP(&o.port, "port", "p", 3000, "TCP port to listen on (env ROCKET_PORT)")
	f.StringVarP(&o.addr, "addr", "a", "::", "IP address to listen on (env ROCKET_ADDRESS)")
	f.StringVar(&o.host, "host", "", "without --key/--crt: generate an ephemeral self-signed CA with CN=<host> (debug mode) (env RENDER_EXTERNAL_HOSTNAME)")
	f.StringSliceVar(&o.sans, "san", nil, "DNS name or IP address added to every issued certificate; repeatable or comma-separated (env STEWARD_SAN)")
	f.StringVar(&o.config, "config", "", "policy TOML file for the evidence verifiers (docs/policy.md); without it only no-hardware evidence, in debug mode")
	f.StringVar(&o.tlsCert, "tls-cert", "", "serve HTTPS with this PEM certificate chain (needs --tls-key)")
	f.StringVar(&o.tlsKey, "tls-key", "", "PEM private key for --tls-cert")
	f.StringVar(&o.verifyTime, "verify-time", "", "pin the evidence verification clock to this RFC 3339 time, to replay recorded evidence; overrides the policy's verify_time (env STEWARD_VERIFY_TIME)")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error (env STEWARD_LOG_LEVEL)")
	f.StringVar(&o.logFormat, "log-format", "text", "log format: text or json (json also when RUST_LOG_JSON is set)")
	f.Int64Var(&o.maxBody, "max-body", steward.DefaultMaxBodyBytes, "largest accepted request body in bytes")
	f.IntVar(&o.maxConns, "max-connections", steward.DefaultMaxConns, "most connections held open; at the bound an idle one is closed for a new one, else the new one waits")
	f.IntVar(&o.maxConnsIP, "max-connections-per-ip", steward.DefaultMaxConnsPerIP, "most connections held open from one IPv4 address or IPv6 /64 (an idle one is closed for a new one, else the new one); 0: no such bound (behind a proxy that hides client addresses)")
	return cmd
}

// applyEnv sets each flag that was not given from its environment variable.
func applyEnv(fs *pflag.FlagSet) error {
	for name, env := range envs {
		v, ok := os.LookupEnv(env)
		if !ok || fs.Changed(name) {
			continue
		}
		if err := fs.Set(name, v); err != nil {
			return fmt.Errorf("environment variable %s: %w", env, err)
		}
	}
	if _, ok := os.LookupEnv("RUST_LOG_JSON"); ok && !fs.Changed("log-format") {
		return fs.Set("log-format", "json")
	}
	return nil
}

// expandArgFiles replaces each "@file.toml" argument by the flags in that
// file's top-level table, as upstream's confargs does: name = "value",
// name = 3000, name = true, or name = ["a", "b"] for repeatable flags. The
// flags of one file are given in the order of their names.
func expandArgFiles(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		if !strings.HasPrefix(a, "@") || len(a) == 1 {
			out = append(out, a)
			continue
		}
		data, err := os.ReadFile(a[1:])
		if err != nil {
			return nil, fmt.Errorf("argument file: %w", err)
		}
		var table map[string]any
		if err := toml.Unmarshal(data, &table); err != nil {
			var de *toml.DecodeError
			if errors.As(err, &de) {
				row, col := de.Position()
				return nil, fmt.Errorf("argument file %s: line %d, column %d: %s", a[1:], row, col, strings.TrimPrefix(de.Error(), "toml: "))
			}
			return nil, fmt.Errorf("argument file %s: %w", a[1:], err)
		}
		names := make([]string, 0, len(table))
		for name := range table {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			switch v := table[name].(type) {
			case string:
				out = append(out, "--"+name+"="+v)
			case int64:
				out = append(out, "--"+name+"="+strconv.FormatInt(v, 10))
			case bool:
				out = append(out, "--"+name+"="+strconv.FormatBool(v))
			case []any:
				for _, e := range v {
					s, ok := e.(string)
					if !ok {
						return nil, fmt.Errorf("argument file %s: %s: list elements must be strings", a[1:], name)
					}
					out = append(out, "--"+name+"="+s)
				}
			default:
				return nil, fmt.Errorf("argument file %s: %s: want a string, integer, boolean or list of strings", a[1:], name)
			}
		}
	}
	return out, nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// run builds the server from o and serves until ctx is done.
func run(ctx context.Context, stderr io.Writer, o *options) error {
	log, err := newLogger(stderr, o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	ca, err := loadCA(o, log)
	if err != nil {
		return err
	}
	pol, err := loadPolicy(o, log)
	if err != nil {
		return err
	}
	verifyTime, err := verificationClock(o, pol, log)
	if err != nil {
		return err
	}
	verifiers, err := buildVerifiers(pol)
	if err != nil {
		return err
	}
	srv, err := steward.New(steward.Config{
		CA: ca, Verifiers: verifiers, SANs: o.sans, VerifyTime: verifyTime,
		Logger: log, MaxBodyBytes: o.maxBody, MaxConns: o.maxConns, MaxConnsPerIP: perIP(o.maxConnsIP),
	})
	if err != nil {
		return err
	}
	var tlsConfig *tls.Config
	switch {
	case o.tlsCert != "" && o.tlsKey != "":
		warnExposedKey(log, "--tls-key", o.tlsKey)
		pair, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	case o.tlsCert != "" || o.tlsKey != "":
		return errors.New("--tls-cert and --tls-key must be given together")
	}
	if o.maxConns < 1 {
		return fmt.Errorf("--max-connections %d: want at least 1", o.maxConns)
	}
	if o.maxBody < 1 {
		// The server would take 0 as its default (1 MiB), not as "no
		// bound", which is what a user giving 0 may mean.
		return fmt.Errorf("--max-body %d: want at least 1 (bytes; the default is %d)", o.maxBody, steward.DefaultMaxBodyBytes)
	}
	if o.maxConnsIP < 0 {
		return fmt.Errorf("--max-connections-per-ip %d: want 0 (no bound) or more", o.maxConnsIP)
	}
	if o.port < 0 || o.port > 65535 {
		return fmt.Errorf("--port %d is not a TCP port", o.port)
	}
	addr := net.JoinHostPort(o.addr, strconv.Itoa(o.port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	if o.onListening != nil {
		o.onListening(ln.Addr())
	}
	return srv.Serve(ctx, ln, tlsConfig)
}

// perIP maps --max-connections-per-ip (0: none) to
// steward.Config.MaxConnsPerIP (0: the default, below 0: none).
func perIP(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// loadCA follows upstream's mode selection: --key and --crt load a CA;
// otherwise --host generates an ephemeral one; otherwise it is an error.
func loadCA(o *options, log *slog.Logger) (*steward.CA, error) {
	switch {
	case o.key != "" && o.crt != "":
		keyPEM, err := readPEMArg("--key", o.key)
		if err != nil {
			return nil, err
		}
		warnExposedKey(log, "--key", o.key)
		crtPEM, err := readPEMArg("--crt", o.crt)
		if err != nil {
			return nil, err
		}
		return steward.ParseCA(keyPEM, crtPEM)
	case o.key != "" || o.crt != "":
		return nil, errors.New("--key and --crt must be given together")
	case o.host != "":
		log.Warn("generating an ephemeral self-signed CA; this steward runs in DEBUG MODE", "host", o.host)
		return steward.GenerateCA(o.host, time.Now())
	}
	return nil, errors.New("give the CA with --key and --crt (or STEWARD_KEY and STEWARD_CRT), or --host <name> for an ephemeral debug CA")
}

// readPEMArg takes PEM text given directly (as in an environment variable)
// or the name of a file holding it.
func readPEMArg(flag, v string) ([]byte, error) {
	if strings.HasPrefix(strings.TrimSpace(v), "-----BEGIN ") {
		return []byte(v), nil
	}
	b, err := os.ReadFile(v)
	if err != nil {
		if !likeFileName(v) {
			// Most likely the PEM itself, mangled on its way into the
			// environment (quoted, \n-escaped, base64-encoded): for --key
			// that is the CA's private key, which must not reach the log.
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, fmt.Errorf("%s: the value (%d bytes, not shown) is neither PEM text starting with its -----BEGIN line "+
				"nor the name of a readable file: %w; give the PEM as is, or a file name", flag, len(v), err)
		}
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return b, nil
}

// warnExposedKey warns when the key file named by v, a flag's value that
// may be the PEM itself, is exposed to other users: the CA key signs every
// Keep certificate.
func warnExposedKey(log *slog.Logger, flag, v string) {
	if !strings.HasPrefix(strings.TrimSpace(v), "-----BEGIN ") {
		keyfile.WarnIfExposed(log, flag, v)
	}
}

// likeFileName reports whether v can be shown as the file name it was
// taken for: one short line that holds no PEM armour.
func likeFileName(v string) bool {
	return len(v) <= 128 && !strings.ContainsAny(v, "\r\n") && !strings.Contains(v, "-----")
}

// loadPolicy loads --config; nil without it.
func loadPolicy(o *options, log *slog.Logger) (*policy.Policy, error) {
	if o.config == "" {
		log.Info("no --config policy: only no-hardware (KVM) evidence is verified, and only in debug mode")
		return nil, nil
	}
	p, err := policy.Load(o.config)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	if p.AllowNoHardware {
		log.Warn("the policy accepts no-hardware evidence ([none] allow = true): certificates may be issued to Keeps without a TEE (they say hardware=false)")
	}
	if roots := p.EmulatedRoots(); len(roots) > 0 {
		log.Warn("the policy TRUSTS EMULATED TEE ROOTS (enarx snp-emulated/tdx-emulated): evidence under them proves nothing about hardware; issued certificates say hardware=false. Never use this in production.", "roots", roots)
	}
	return p, nil
}

// verificationClock returns the pinned clock of --verify-time, else of
// the policy's verify_time, else nil (wall clock).
func verificationClock(o *options, p *policy.Policy, log *slog.Logger) (func() time.Time, error) {
	var t time.Time
	switch {
	case o.verifyTime != "":
		var err error
		t, err = time.Parse(time.RFC3339, o.verifyTime)
		if err != nil {
			return nil, fmt.Errorf("--verify-time %q: want an RFC 3339 time such as 2023-02-01T00:00:00Z: %w", o.verifyTime, err)
		}
	case p != nil && !p.VerifyTime.IsZero():
		t = p.VerifyTime
	default:
		return nil, nil
	}
	log.Warn("the evidence verification clock is PINNED: certificates, CRLs and TCB info are checked at this time, not now", "verify_time", t)
	return func() time.Time { return t }, nil
}

// buildVerifiers returns the evidence verifiers the policy describes.
// Without a policy only the no-hardware (KVM) verifier is configured, and
// it accepts evidence only in debug mode. (Upstream verifies SGX and SNP
// with default checks even without a policy file; pass an empty file,
// --config /dev/null, for that.)
func buildVerifiers(p *policy.Policy) ([]attest.Verifier, error) {
	if p == nil {
		return []attest.Verifier{kvm.New(kvm.Options{})}, nil
	}
	vs, err := p.Verifiers(policy.Options{})
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	return vs, nil
}
