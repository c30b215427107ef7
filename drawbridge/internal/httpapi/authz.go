package httpapi

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/enarx-go/enarx/attest/certext"
	"github.com/enarx-go/enarx/drawbridge/internal/store"
)

// Authorization: who may do what (reference §3.3).

// token verifies the bearer token of r.
func (h *Handler) token(r *http.Request, req *request) (*Claims, error) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return nil, errorf(http.StatusUnauthorized, "Bearer token header missing")
	}
	scheme, raw, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || raw == "" || strings.ContainsAny(raw, " \t") {
		return nil, errorf(http.StatusBadRequest, "Invalid Authorization header: want `Bearer <token>`")
	}
	c, err := h.cfg.Tokens.Verify(r.Context(), raw)
	if err != nil {
		h.log.Debug("token rejected", "err", err)
		return nil, errorf(http.StatusUnauthorized, "Invalid token provided")
	}
	req.subject = c.Subject
	return c, nil
}

func requireScope(c *Claims, level, context string) error {
	if !c.HasScope(level, context) {
		return errorf(http.StatusUnauthorized, "Token is missing a scope for level %s, context %s", level, context)
	}
	return nil
}

// owner checks the token is the owner of req.user and has the scope:
// user exists, subject matches, scope present (upstream's order).
func (h *Handler) owner(r *http.Request, req *request, level, context string) error {
	c, err := h.token(r, req)
	if err != nil {
		return err
	}
	_, body, err := h.cfg.Registry.User(r.Context(), req.user)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusUnauthorized, "User `%s` not found", req.user)
	} else if err != nil {
		return err
	}
	var rec userRecord
	if err := json.Unmarshal(body, &rec); err != nil {
		return fmt.Errorf("stored user record of %s is corrupt: %w", req.user, err)
	}
	if rec.Subject != c.Subject {
		return errorf(http.StatusUnauthorized, "You are logged in as `%s`, and not authorized for user `%s`", c.Subject, req.user)
	}
	return requireScope(c, level, context)
}

// readable allows reads of a repository's tags (and, with a trusted
// client certificate, trees): public repos for everyone, private ones for
// the owner with repositories:read.
//
// A caller who may not read a repository gets what a missing repository
// gets, upstream's 404 "Not found", whatever the reason (no token, a
// malformed header, an invalid token, another user's token, a missing
// scope): the answer is decided without looking at whether the repository
// exists, so nobody can tell a private repository, or a tag or path in it,
// from a missing one. The owner check runs for a missing repository too,
// so both do the same work (token verification, which may fetch the
// issuer's keys, and the user record); only the repository config read
// differs (a stored one may come from the cache).
func (h *Handler) readable(r *http.Request, req *request, certOK bool) error {
	_, body, err := h.cfg.Registry.Repo(r.Context(), req.user, req.repo)
	missing := errors.Is(err, store.ErrNotFound)
	if err != nil && !missing {
		return err
	}
	if !missing {
		var cfg repoConfig
		if err := json.Unmarshal(body, &cfg); err != nil || cfg.Public == nil {
			return fmt.Errorf("stored repository config of %s/%s is corrupt", req.user, req.repo)
		}
		if *cfg.Public {
			return nil
		}
		if certOK && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
			err := h.certAllowed(r.TLS.VerifiedChains[0][0])
			if err == nil {
				return nil
			}
			// Not for private trees under the policy; a token may still do.
			h.log.Info("client certificate refused by the registry's policy", "subject", r.TLS.VerifiedChains[0][0].Subject.String(), "reason", err)
		}
	}
	if err := h.owner(r, req, levelRead, ctxRepos); err != nil {
		var he *httpError
		if errors.As(err, &he) {
			return errNotVisible()
		}
		return err // storage failure: the same whether or not the repository exists
	}
	if missing {
		return errNotVisible()
	}
	return nil
}

// errNotVisible is the answer to a read of a missing repository, and of a
// private one by a caller who may not read it (upstream's answer for a
// missing repository).
func errNotVisible() error { return errorf(http.StatusNotFound, "Not found") }

// certAllowed applies Config.RequireAttestedHardware to a verified client
// certificate.
func (h *Handler) certAllowed(c *x509.Certificate) error {
	if !h.cfg.RequireAttestedHardware {
		return nil
	}
	_, a, err := certext.FromCertificate(c)
	switch {
	case err != nil:
		return fmt.Errorf("malformed attestation extension: %w", err)
	case a == nil:
		return errors.New("no attested-as extension (not issued by a Steward for attested evidence)")
	case !a.Claims.HardwareBacked:
		return fmt.Errorf("the %s evidence it was issued for is not hardware-backed", a.Claims.Kind)
	case a.Claims.Debug:
		return fmt.Errorf("the %s TEE runs in debug mode", a.Claims.Kind)
	case a.StewardDebug:
		return errors.New("it was issued by a Steward in debug mode")
	}
	return nil
}
