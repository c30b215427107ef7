package httpapi

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// jwksKeySet is an oidc.KeySet that fetches the issuer's JWKS and keeps it
// fresh. go-oidc's RemoteKeySet refetches only when a token fails to
// verify, which has two problems for a server: a key the issuer has
// withdrawn (say, after a compromise) keeps being accepted for as long as
// the process runs, and every token with a bad signature or an unknown kid
// costs a request to the issuer (also, its cache is updated only after the
// waiting verifications have been woken, so one may briefly see the old
// set). This set instead
//   - refetches when its copy is older than maxAge, so withdrawn keys stop
//     working within maxAge;
//   - refetches early when a token names a kid it does not know (key
//     rotation), but at most once per minInterval, so garbage tokens cannot
//     make it hammer the issuer.
type jwksKeySet struct {
	url         string
	client      *http.Client
	maxAge      time.Duration
	minInterval time.Duration
	now         func() time.Time

	mu          sync.Mutex
	keys        []jose.JSONWebKey
	fetched     time.Time     // when keys were fetched
	lastAttempt time.Time     // last fetch attempt, successful or not
	lastErr     error         // of the last fetch
	fetching    chan struct{} // closed when the running fetch ends; nil if none
	fetches     int
}

const (
	defaultJWKSMaxAge      = 10 * time.Minute
	defaultJWKSMinInterval = 10 * time.Second
	maxJWKSSize            = 1 << 20
)

func newJWKSKeySet(url string, client *http.Client) *jwksKeySet {
	return &jwksKeySet{url: url, client: client, maxAge: defaultJWKSMaxAge, minInterval: defaultJWKSMinInterval, now: time.Now}
}

// VerifySignature implements oidc.KeySet. The verifier has already
// checked the algorithm against its allow-list.
func (k *jwksKeySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	// A JWT is always in compact serialization (RFC 7519 §7.2).
	jws, err := jose.ParseSignedCompact(raw, jwsAlgs)
	if err != nil {
		return nil, fmt.Errorf("malformed jwt: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("jwt must carry exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	keys, err := k.current(ctx, "")
	if err != nil {
		return nil, err
	}
	if p, ok := verifyWith(jws, keys, kid); ok {
		return p, nil
	}
	// Unknown kid: the issuer may have rotated. Ask again (rate limited).
	if kid != "" && !hasKid(keys, kid) {
		if keys, err = k.current(ctx, kid); err != nil {
			return nil, err
		}
		if p, ok := verifyWith(jws, keys, kid); ok {
			return p, nil
		}
	}
	return nil, errors.New("token signature does not verify with the issuer's keys")
}

func hasKid(keys []jose.JSONWebKey, kid string) bool {
	for _, key := range keys {
		if key.KeyID == kid {
			return true
		}
	}
	return false
}

func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid string) ([]byte, bool) {
	for _, key := range keys {
		if kid != "" && key.KeyID != kid {
			continue
		}
		if p, err := jws.Verify(&key); err == nil {
			return p, true
		}
	}
	return nil, false
}

// current returns the cached keys, refetching if they are older than
// maxAge, or if wantKid is not among them and the last attempt is older
// than minInterval. One fetch runs at a time, outside the lock: a caller
// whose keys are current never waits for it (a slow or hanging issuer,
// or a stream of tokens naming unknown keys, must not hold up tokens of
// known keys); a caller that needs the fetch (its kid is unknown, or the
// set is older than maxAge) waits for it, or for its own context, except
// that while the issuer is failing a stale set younger than 2×maxAge is
// used without waiting.
func (k *jwksKeySet) current(ctx context.Context, wantKid string) ([]jose.JSONWebKey, error) {
	k.mu.Lock()
	for {
		now := k.now()
		stale := k.keys == nil || now.Sub(k.fetched) >= k.maxAge
		missing := wantKid != "" && !hasKid(k.keys, wantKid)
		usable := k.keys != nil && now.Sub(k.fetched) < 2*k.maxAge
		if !stale && !missing {
			keys := k.keys
			k.mu.Unlock()
			return keys, nil
		}
		if wait := k.fetching; wait != nil {
			if stale && k.lastErr != nil && usable {
				keys := k.keys // the issuer is failing: keep the last good set a while
				k.mu.Unlock()
				return keys, nil
			}
			k.mu.Unlock()
			select {
			case <-wait:
			case <-ctx.Done():
				return nil, fmt.Errorf("waiting for the issuer's keys: %w", ctx.Err())
			}
			k.mu.Lock()
			if !stale {
				// Its kid was looked for: the fetch just made decides.
				keys := k.keys
				k.mu.Unlock()
				return keys, nil
			}
			continue
		}
		if !k.lastAttempt.IsZero() && now.Sub(k.lastAttempt) < k.minInterval && k.keys != nil {
			keys, lastErr := k.keys, k.lastErr
			k.mu.Unlock()
			if stale && !usable {
				return nil, fmt.Errorf("fetching the issuer's keys: %w", cmp.Or(lastErr, errors.New("the cached key set is too old")))
			}
			return keys, nil
		}
		k.lastAttempt = now
		k.fetches++
		done := make(chan struct{})
		k.fetching = done
		k.mu.Unlock()
		keys, err := k.fetch(ctx)
		k.mu.Lock()
		k.fetching = nil
		close(done)
		k.lastErr = err
		if err == nil {
			k.keys, k.fetched = keys, now
		}
		cur, fetched := k.keys, k.fetched
		k.mu.Unlock()
		if err != nil {
			if cur != nil && now.Sub(fetched) < 2*k.maxAge {
				return cur, nil // issuer briefly unreachable: keep the last good set a while
			}
			return nil, fmt.Errorf("fetching the issuer's keys: %w", err)
		}
		return keys, nil
	}
}

func (k *jwksKeySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	res, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: status %s", k.url, res.Status)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(res.Body, maxJWKSSize)).Decode(&set); err != nil {
		return nil, fmt.Errorf("%s: %w", k.url, err)
	}
	var keys []jose.JSONWebKey
	for _, key := range set.Keys {
		if key.IsPublic() && (key.Use == "" || key.Use == "sig") {
			keys = append(keys, key)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no public signing keys", k.url)
	}
	return keys, nil
}
