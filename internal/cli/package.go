package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/enarx-go/enarx/drawbridge/client"
	"github.com/enarx-go/enarx/drawbridge/types"
	"github.com/enarx-go/enarx/internal/credentials"
	"github.com/enarx-go/enarx/internal/progress"
)

// progressMinSize is the smallest transfer that gets a progress bar.
const progressMinSize = 1 << 20

// registryFlags are the flags every Drawbridge command takes.
type registryFlags struct {
	caBundle string
	// token is --insecure-auth-token: sent to the registry this command
	// names, whichever it is (the user typed both).
	token string
	// envToken is ENARX_INSECURE_AUTH_TOKEN: an ambient credential, sent
	// only to the registries envTokenHosts (ENARX_INSECURE_AUTH_TOKEN_HOST)
	// names, never to whatever host a package spec names.
	envToken      string
	envTokenHosts []string
	// withheldHost is set when the environment's token was not sent to it
	// (for error hints).
	withheldHost string
	oidcDomain   string
	credHelper   string
	// storedHost is set when a stored token is used (for error hints).
	storedHost string
	// anonHost is set when no token is sent to it (for error hints).
	anonHost string
}

func (f *registryFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.caBundle, "ca-bundle", os.Getenv("ENARX_CA_BUNDLE"),
		"PEM file of CA certificates trusted for the registry instead of the system roots (env ENARX_CA_BUNDLE)")
	// The environment's token is not the flag's default: help text would
	// print it.
	fs.StringVar(&f.token, "insecure-auth-token", "",
		"use this OIDC access token instead of stored credentials (visible to other local users; env ENARX_INSECURE_AUTH_TOKEN, "+
			"which is sent only to the registries named in ENARX_INSECURE_AUTH_TOKEN_HOST)")
	f.envToken = os.Getenv(envTokenVar)
	for _, h := range strings.Split(os.Getenv(envTokenHostVar), ",") {
		if h = strings.TrimSpace(h); h != "" {
			f.envTokenHosts = append(f.envTokenHosts, h)
		}
	}
	// No default: upstream's (its hosted issuer) no longer runs.
	fs.StringVar(&f.oidcDomain, "oidc-domain", os.Getenv("ENARX_OIDC_DOMAIN"),
		"OIDC issuer URL the stored credentials belong to (env ENARX_OIDC_DOMAIN)")
	fs.StringVar(&f.credHelper, "credential-helper", os.Getenv("ENARX_CREDENTIAL_HELPER"),
		"program that stores credentials (`helper show|insert ID`) instead of files under the user config dir (env ENARX_CREDENTIAL_HELPER)")
}

func (f *registryFlags) readCABundle() ([]byte, error) {
	if f.caBundle == "" {
		return nil, nil
	}
	b, err := os.ReadFile(f.caBundle)
	if err != nil {
		return nil, fmt.Errorf("reading --ca-bundle: %w", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("--ca-bundle %s holds no PEM certificate: give the registry's CA certificate "+
			"(a `drawbridge --dev` registry's is STORE/dev-ca.pem)", f.caBundle)
	}
	return b, nil
}

func (f *registryFlags) store() (credentials.Store, error) {
	if f.credHelper != "" {
		return credentials.Helper{Program: f.credHelper}, nil
	}
	dir, err := credentials.DefaultDir()
	if err != nil {
		return nil, err
	}
	return credentials.FileStore{Dir: dir}, nil
}

// The environment's token and the registries it is for.
const (
	envTokenVar     = "ENARX_INSECURE_AUTH_TOKEN"
	envTokenHostVar = "ENARX_INSECURE_AUTH_TOKEN_HOST"
)

// envTokenFor reports whether the environment's token may be sent to host
// (HOST[:PORT] as the command names it; host names compare without case).
func (f *registryFlags) envTokenFor(host string) bool {
	for _, h := range f.envTokenHosts {
		if strings.EqualFold(h, host) {
			return true
		}
	}
	return false
}

// authToken returns the token for host: the flag's, else the
// environment's when it is for host, else the stored one. With required
// false, missing credentials mean anonymous access.
func (f *registryFlags) authToken(ctx context.Context, host string, required bool) (string, error) {
	if f.token != "" {
		return f.token, nil
	}
	if f.envToken != "" {
		if f.envTokenFor(host) {
			return f.envToken, nil
		}
		if required && f.oidcDomain == "" {
			return "", fmt.Errorf("%s is set but not sent to %s: %s does not name it (it names %q). "+
				"If the token is for %s, add it: export %s=%s; or pass --insecure-auth-token",
				envTokenVar, host, envTokenHostVar, strings.Join(f.envTokenHosts, ","), host, envTokenHostVar, host)
		}
		// Another registry's token: anonymous, or a stored token.
		f.withheldHost = host
	}
	if f.oidcDomain == "" {
		// Stored credentials are kept per issuer; without one there is
		// nothing to look up.
		if !required {
			return "", nil
		}
		return "", f.notLoggedIn(host, credentials.ErrNotFound)
	}
	id, err := credentials.ID(f.oidcDomain, host)
	if err != nil {
		return "", err
	}
	st, err := f.store()
	if err != nil {
		return "", err
	}
	tok, err := st.Get(ctx, id)
	if err == nil {
		f.storedHost = host
	}
	if errors.Is(err, credentials.ErrNotFound) {
		if !required {
			return "", nil
		}
		return "", f.notLoggedIn(host, err)
	}
	return tok, err
}

// notLoggedIn says how to give a token for host: the dev registry's, or a
// login at the registry's issuer.
func (f *registryFlags) notLoggedIn(host string, err error) error {
	issuer := f.oidcDomain
	if issuer == "" {
		issuer = "ISSUER-URL"
	}
	return &hintError{msg: fmt.Sprintf("not logged in to %s: pass --insecure-auth-token TOKEN "+
		"(a `drawbridge --dev` registry writes one to STORE/dev-token), or run "+
		"`enarx user login --oidc-domain %s --store-host %s` and give the same --oidc-domain "+
		"(or ENARX_OIDC_DOMAIN) to this command", host, issuer, host), err: err}
}

// hintError is a message that replaces its cause's text but still wraps it.
type hintError struct {
	msg string
	err error
}

func (e *hintError) Error() string { return e.msg }
func (e *hintError) Unwrap() error { return e.err }

// explain adds a hint to an error a registry command ends with: which
// flag supplies the CA of a registry whose certificate is not trusted;
// that nothing listens where a request was refused (a registry that is not
// running, a wrong port); that a stored token answered 401 has most likely
// expired (tokens are not refreshed); and, for a package the registry answers as missing (it
// answers a private package the same to those who may not read it), that
// logging in may show it.
func (f *registryFlags) explain(err error) error {
	var ua x509.UnknownAuthorityError
	if err != nil && errors.As(err, &ua) {
		if f.caBundle == "" {
			return fmt.Errorf("%w\n(the registry's certificate is not signed by a CA this system trusts: give its CA "+
				"with --ca-bundle FILE or ENARX_CA_BUNDLE; a `drawbridge --dev` registry's is STORE/dev-ca.pem)", err)
		}
		return fmt.Errorf("%w\n(the registry's certificate does not chain to a CA in --ca-bundle %s)", err, f.caBundle)
	}
	var ue *url.Error
	if err != nil && errors.Is(err, syscall.ECONNREFUSED) && errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			return fmt.Errorf("%w\n(nothing accepts connections at %s: start the registry there, or correct the host and port you gave)", err, u.Host)
		}
	}
	if err != nil && f.withheldHost != "" && f.storedHost == "" &&
		(client.IsStatus(err, http.StatusUnauthorized) || client.IsStatus(err, http.StatusForbidden) || client.IsStatus(err, http.StatusNotFound)) {
		return fmt.Errorf("%w\n(%s was not sent to %s, which %s does not name: if the token is for that registry, "+
			"export %s=%s)", err, envTokenVar, f.withheldHost, envTokenHostVar, envTokenHostVar, f.withheldHost)
	}
	if err != nil && errors.Is(err, client.ErrNoRepository) {
		issuer := f.oidcDomain
		if issuer == "" {
			issuer = "ISSUER-URL"
		}
		switch {
		case f.anonHost != "":
			return fmt.Errorf("%w\n(you are not logged in to %s: if the package is private, run `enarx user login --oidc-domain %s --store-host %s` "+
				"and give the same --oidc-domain (or ENARX_OIDC_DOMAIN) to this command, or pass --insecure-auth-token TOKEN)",
				err, f.anonHost, issuer, f.anonHost)
		case f.storedHost != "":
			return fmt.Errorf("%w\n(if the package is yours, your stored token may have expired: run `enarx user login --store-host %s --oidc-domain %s`)",
				err, f.storedHost, issuer)
		}
	}
	if err != nil && f.storedHost != "" && client.IsStatus(err, http.StatusUnauthorized) {
		return fmt.Errorf("%w\n(your stored token may have expired: run `enarx user login --store-host %s --oidc-domain %s`)",
			err, f.storedHost, f.oidcDomain)
	}
	return err
}

// hinted wraps a command's RunE with explain.
func (f *registryFlags) hinted(run func(*cobra.Command, []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error { return f.explain(run(cmd, args)) }
}

// client returns a registry client for host with progress bars on stderr
// (when it is a terminal).
func (f *registryFlags) client(cmd *cobra.Command, host string, tokenRequired bool) (*client.Client, error) {
	ca, err := f.readCABundle()
	if err != nil {
		return nil, err
	}
	tok, err := f.authToken(cmd.Context(), host, tokenRequired)
	if err != nil {
		return nil, err
	}
	if tok == "" {
		f.anonHost = host
	}
	stderr := cmd.ErrOrStderr()
	return client.New(host, client.Options{
		CABundle: ca,
		Token:    tok,
		Progress: func(label string, total int64) func(io.Reader) io.Reader {
			if total < progressMinSize || !progress.IsTerminal(stderr) {
				return nil
			}
			bar := progress.New(stderr, label, total)
			return func(r io.Reader) io.Reader { return &doneReader{r: bar.Reader(r), bar: bar} }
		},
	})
}

// doneReader finishes its progress bar at the end of the stream.
type doneReader struct {
	r   io.Reader
	bar *progress.Bar
}

func (d *doneReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil {
		d.bar.Done()
	}
	return n, err
}

// oidcHTTPClient trusts the system roots plus the CA bundle (the issuer is
// usually public even when the registry is not).
func (f *registryFlags) oidcHTTPClient() (*http.Client, error) {
	ca, err := f.readCABundle()
	if err != nil || ca == nil {
		return http.DefaultClient, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(ca) {
		return nil, errors.New("--ca-bundle contains no PEM certificates")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr}, nil
}

func newPackageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "package",
		Short: "Publish, inspect and fetch packages in a Drawbridge registry",
	}
	cmd.AddCommand(newPackagePublishCmd(), newPackageInfoCmd(), newPackageFetchCmd())
	return cmd
}

func newPackagePublishCmd() *cobra.Command {
	var rf registryFlags
	cmd := &cobra.Command{
		Use:   "publish HOST/USER/REPO:TAG PATH",
		Short: "Publish a main.wasm file or a package directory as a new tag",
		Long: `Publish PATH as the tag. PATH is either a file named main.wasm, or a directory
containing main.wasm and optionally Enarx.toml, other files and subdirectories.
Symbolic links inside the directory are refused (one could publish a file from
outside it): replace each with a copy of what it points to. Every node is hashed locally (bottom-up) and uploaded with its Content-Digest;
the registry rejects anything that does not match. On success the pinned spec
(…:TAG@sha-256:<digest>) is printed; deploy it to be sure to run exactly this.`,
		Args: exactArgs(2),
		RunE: rf.hinted(func(cmd *cobra.Command, args []string) error {
			spec, err := client.ParsePackageSpec(args[0])
			if err != nil {
				return err
			}
			tree, err := client.BuildTree(args[1])
			if err != nil {
				return err
			}
			c, err := rf.client(cmd, spec.Host, true)
			if err != nil {
				return err
			}
			if err := c.Publish(cmd.Context(), spec, tree); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), pinned(spec, tree.Root().Digest))
			return nil
		}),
	}
	rf.register(cmd.Flags())
	return cmd
}

// pinned returns spec pinned to the root's SHA-256.
func pinned(spec client.PackageSpec, root types.Digests) string {
	spec.Pin = nil
	if v, ok := root[types.SHA256]; ok {
		spec.Pin = types.Digests{types.SHA256: v}
	}
	return spec.String()
}

func newPackageInfoCmd() *cobra.Command {
	var rf registryFlags
	cmd := &cobra.Command{
		Use:   "info HOST/USER/REPO:TAG[@sha-256:DIGEST]",
		Short: "Print a package's tag entry (the digest, length and type of its root)",
		Args:  exactArgs(1),
		RunE: rf.hinted(func(cmd *cobra.Command, args []string) error {
			spec, err := client.ParsePackageSpec(args[0])
			if err != nil {
				return err
			}
			c, err := rf.client(cmd, spec.Host, false)
			if err != nil {
				return err
			}
			tag, err := c.GetTag(cmd.Context(), spec)
			if err != nil {
				return err
			}
			var out bytes.Buffer
			if err := json.Indent(&out, tag.Body, "", "  "); err != nil {
				return fmt.Errorf("tag entry: %w", err)
			}
			out.WriteByte('\n')
			_, err = cmd.OutOrStdout().Write(jsonTerminalSafe(out.Bytes()))
			return err
		}),
	}
	rf.register(cmd.Flags())
	return cmd
}

// jsonTerminalSafe escapes, in JSON from a registry that is printed, the
// characters a terminal may obey that JSON leaves as they are: DEL and the
// C1 controls (U+0080–U+009F; ESC and the other C0 controls cannot appear
// unescaped in JSON) become \u escapes, and invalid UTF-8 (a lone 0x9b is
// CSI to an 8-bit terminal) becomes \ufffd, as a JSON decoder reads it.
// Outside strings JSON is ASCII, so every such character is inside a string
// and the result means the same.
func jsonTerminalSafe(b []byte) []byte {
	var out []byte
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			out = append(out, `\ufffd`...)
		case r == 0x7f || r >= 0x80 && r < 0xa0:
			out = fmt.Appendf(out, `\u%04x`, r)
		default:
			out = append(out, b[i:i+n]...)
		}
		i += n
	}
	return out
}

func newPackageFetchCmd() *cobra.Command {
	var rf registryFlags
	cmd := &cobra.Command{
		Use:   "fetch HOST/USER/REPO:TAG[@sha-256:DIGEST] DIR",
		Short: "Download a package into a new directory, verifying every file",
		Long: `Download the package into DIR (which must not exist). Every node is checked
against the entry that names it, from the tag down; DIR only appears once all
of it verified. A single-file package is written as DIR/main.wasm. Directories
are created with mode 0777 and files 0644, less the umask.`,
		Args: exactArgs(2),
		RunE: rf.hinted(func(cmd *cobra.Command, args []string) error {
			spec, err := client.ParsePackageSpec(args[0])
			if err != nil {
				return err
			}
			c, err := rf.client(cmd, spec.Host, false)
			if err != nil {
				return err
			}
			tag, err := c.FetchTree(cmd.Context(), spec, args[1])
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), pinned(spec, tag.Entry.Digest))
			return nil
		}),
	}
	rf.register(cmd.Flags())
	return cmd
}
