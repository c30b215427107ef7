// Package credentials obtains and keeps the OIDC access tokens the enarx CLI
// presents to a Drawbridge registry.
//
// Tokens are stored either in a file readable only by the user
// (os.UserConfigDir()/enarx/credentials/<id>, mode 0600, directory 0700) or
// handed to an external credential helper with upstream Enarx's protocol:
// `<helper> show <id>` prints the secret on stdout, `<helper> insert <id>`
// reads it from stdin, a non-zero exit is an error. The id is
// "<oidc-host>-<store-host>", as upstream computes it.
//
// Trust: the token is a bearer secret. It is never logged; files with
// permissions wider than 0600 are refused rather than read. The OIDC issuer
// is trusted to say who the user is, not with the process: every request to
// it goes over https (plain http to loopback only), reads at most
// MaxIssuerResponseSize and ends after IssuerTimeout.
package credentials

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrNotFound means no token is stored under the id.
var ErrNotFound = errors.New("no stored credentials")

// Store keeps one secret per id.
type Store interface {
	// Get returns the secret stored under id, or an error wrapping ErrNotFound.
	Get(ctx context.Context, id string) (string, error)
	// Put stores secret under id, replacing any previous one.
	Put(ctx context.Context, id, secret string) error
}

// ID returns the credential id for an OIDC issuer and a registry host:
// "<issuer host>-<store host>" (upstream: "auth.profian.com-store.profian.com").
func ID(oidcDomain, storeHost string) (string, error) {
	u, err := url.Parse(oidcDomain)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("invalid OIDC domain %q: want a URL like https://auth.example.com/", oidcDomain)
	}
	if storeHost == "" {
		return "", errors.New("empty registry host")
	}
	id := u.Host + "-" + storeHost
	if err := validID(id); err != nil {
		return "", err
	}
	return id, nil
}

// validID accepts host-like ids only, so an id can never name a path outside
// the credentials directory or be mistaken for a helper option.
func validID(id string) error {
	if id == "" || id[0] == '-' || id[0] == '.' {
		return fmt.Errorf("invalid credential id %q", id)
	}
	for _, c := range id {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '-' || c == ':' || c == '_' || c == '[' || c == ']'
		if !ok {
			return fmt.Errorf("invalid credential id %q: unexpected character %q", id, c)
		}
	}
	return nil
}

// FileStore keeps each secret in Dir/<id>, mode 0600.
type FileStore struct{ Dir string }

// DefaultDir returns os.UserConfigDir()/enarx/credentials.
func DefaultDir() (string, error) {
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("locating the user config directory: %w", err)
	}
	return filepath.Join(d, "enarx", "credentials"), nil
}

// Get implements Store.
func (s FileStore) Get(_ context.Context, id string) (string, error) {
	if err := validID(id); err != nil {
		return "", err
	}
	p := filepath.Join(s.Dir, id)
	// Not through a symbolic link, and without waiting for a writer if
	// the name is a FIFO: only a regular file of this user's is a token.
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return "", fmt.Errorf("credentials file %s is a symbolic link: remove it and log in again", p)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w for %s (run `enarx user login`)", ErrNotFound, id)
	}
	if err != nil {
		return "", fmt.Errorf("reading credentials: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("reading credentials: %w", err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("credentials file %s is not a regular file: remove it and log in again", p)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() {
		return "", fmt.Errorf("credentials file %s belongs to user id %d, not to you: remove it and log in again", p, sys.Uid)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("credentials file %s is accessible by other users (mode %04o): run `chmod 600 %s` or log in again",
			p, st.Mode().Perm(), p)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(f); err != nil {
		return "", fmt.Errorf("reading credentials: %w", err)
	}
	secret := strings.TrimSpace(buf.String())
	if secret == "" {
		return "", fmt.Errorf("%w for %s (file %s is empty)", ErrNotFound, id, p)
	}
	return secret, nil
}

// Put implements Store. The file is written to a temporary name and renamed,
// so a crash never leaves a truncated token behind.
func (s FileStore) Put(_ context.Context, id, secret string) error {
	if err := validID(id); err != nil {
		return err
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("creating credentials directory: %w", err)
	}
	// MkdirAll leaves an existing directory as it is; one that others may
	// enter or write lets them list, replace or plant tokens.
	if err := os.Chmod(s.Dir, 0o700); err != nil {
		return fmt.Errorf("restricting credentials directory %s to mode 0700: %w", s.Dir, err)
	}
	tmp, err := os.CreateTemp(s.Dir, "."+id+".tmp-*")
	if err != nil {
		return fmt.Errorf("storing credentials: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("storing credentials: %w", err)
	}
	if _, err := tmp.WriteString(secret + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("storing credentials: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("storing credentials: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("storing credentials: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(s.Dir, id)); err != nil {
		return fmt.Errorf("storing credentials: %w", err)
	}
	return nil
}

// Helper runs an external credential helper program (upstream protocol).
type Helper struct{ Program string }

// Get implements Store: `<helper> show <id>`, secret on stdout.
func (h Helper) Get(ctx context.Context, id string) (string, error) {
	if err := validID(id); err != nil {
		return "", err
	}
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, h.Program, "show", id)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("credential helper %q show %s: %w%s", h.Program, id, err, helperStderr(errb.String()))
	}
	secret := strings.TrimSpace(out.String())
	if secret == "" {
		return "", fmt.Errorf("%w for %s (credential helper %q printed nothing)", ErrNotFound, id, h.Program)
	}
	return secret, nil
}

// Put implements Store: `<helper> insert <id>`, secret on stdin.
func (h Helper) Put(ctx context.Context, id, secret string) error {
	if err := validID(id); err != nil {
		return err
	}
	var errb bytes.Buffer
	cmd := exec.CommandContext(ctx, h.Program, "insert", id)
	cmd.Stdin = strings.NewReader(secret)
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("credential helper %q insert %s: %w%s", h.Program, id, err, helperStderr(errb.String()))
	}
	return nil
}

func helperStderr(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	const max = 512
	if len(s) > max {
		s = s[:max] + "…"
	}
	return ": " + s
}
