package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/enarx-go/enarx/drawbridge/internal/store"
	"github.com/enarx-go/enarx/drawbridge/types"
)

// One handler per entity kind.

func (h *Handler) user(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx := r.Context()
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if err := h.owner(r, req, levelRead, ctxUsers); err != nil {
			return err
		}
		m, body, err := h.cfg.Registry.User(ctx, req.user)
		if err != nil {
			return getErr(r, err)
		}
		return sendSmall(w, r, m, body)
	case http.MethodPut:
		c, err := h.token(r, req)
		if err != nil {
			return err
		}
		if err := requireScope(c, levelWrite, ctxUsers); err != nil {
			return err
		}
		var rec userRecord
		m, body, err := readRecord(r, &rec)
		if err != nil {
			return err
		}
		if rec.Subject != c.Subject {
			return errorf(http.StatusUnauthorized, "OpenID Connect subject mismatch")
		}
		if err := storeErr(h.cfg.Registry.CreateUser(ctx, req.user, m, body)); err != nil {
			return err
		}
		created(w, false)
		return nil
	}
	return errorf(http.StatusMethodNotAllowed, "Method not allowed for user endpoint")
}

func (h *Handler) repository(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx := r.Context()
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if err := h.owner(r, req, levelRead, ctxRepos); err != nil {
			return err
		}
		m, body, err := h.cfg.Registry.Repo(ctx, req.user, req.repo)
		if err != nil {
			return getErr(r, err)
		}
		return sendSmall(w, r, m, body)
	case http.MethodPut:
		if err := h.owner(r, req, levelWrite, ctxRepos); err != nil {
			return err
		}
		var cfg repoConfig
		m, body, err := readRecord(r, &cfg)
		if err != nil {
			return err
		}
		if cfg.Public == nil {
			return errorf(http.StatusUnprocessableEntity, "Failed to deserialize the JSON body: missing field `public`")
		}
		if err := storeErr(h.cfg.Registry.CreateRepo(ctx, req.user, req.repo, m, body)); err != nil {
			return err
		}
		created(w, false)
		return nil
	}
	return errorf(http.StatusMethodNotAllowed, "Method not allowed for repository endpoint")
}

func (h *Handler) tagList(w http.ResponseWriter, r *http.Request, req *request) error {
	if r.Method != http.MethodGet {
		return errorf(http.StatusMethodNotAllowed, "Method not allowed for repository tag query endpoint")
	}
	if err := h.readable(r, req, false); err != nil {
		return err
	}
	tags, err := h.cfg.Registry.Tags(r.Context(), req.user, req.repo)
	if err != nil {
		return getErr(r, err)
	}
	if tags == nil {
		tags = []types.TagName{}
	}
	body, _ := json.Marshal(tags)
	d, n := types.Compute(body)
	return sendSmall(w, r, types.Meta{Digest: d, Length: n, Type: "application/json"}, body)
}

func (h *Handler) tagEntry(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx := r.Context()
	ref := store.TagRef{User: req.user, Repo: req.repo, Tag: req.tag}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if err := h.readable(r, req, false); err != nil {
			return err
		}
		o, err := h.cfg.Registry.Tag(ctx, ref)
		if err != nil {
			return getErr(r, err)
		}
		return sendObject(w, r, o)
	case http.MethodPut:
		if err := h.devCreate(r, req); err != nil {
			return err
		}
		if err := h.owner(r, req, levelWrite, ctxTags); err != nil {
			return err
		}
		m, err := claimedMeta(r, true)
		if err != nil {
			return err
		}
		if m.Type != types.EntryType && m.Type != types.JWSType {
			return errorf(http.StatusBadRequest, "Invalid content type")
		}
		body, err := readBody(r, m, store.MaxRecordSize)
		if err != nil {
			return err
		}
		resumed, err := h.cfg.Registry.CreateTag(ctx, ref, m, body)
		if err := storeErr(err); err != nil {
			return err
		}
		created(w, resumed)
		return nil
	}
	return errorf(http.StatusMethodNotAllowed, "Method not allowed for tag endpoint")
}

// devCreate, in dev mode, creates the user and a public repository named
// by a tag PUT if they are missing and the token is the dev token's
// subject, so a newcomer can publish with one command. It writes nothing
// for a request that the normal checks then refuse: the token must have
// the write scopes for the tag and for what is created, and an existing
// user must be the dev subject's own.
func (h *Handler) devCreate(r *http.Request, req *request) error {
	if h.cfg.DevSubject == "" {
		return nil
	}
	c, err := h.token(r, req)
	if err != nil || c.Subject != h.cfg.DevSubject || !c.HasScope(levelWrite, ctxTags) {
		return nil // the normal checks report it
	}
	ctx := r.Context()
	_, rec, err := h.cfg.Registry.User(ctx, req.user)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if !c.HasScope(levelWrite, ctxUsers) || !c.HasScope(levelWrite, ctxRepos) {
			return nil
		}
		body, _ := json.Marshal(userRecord{Subject: c.Subject})
		d, n := types.Compute(body)
		err := h.cfg.Registry.CreateUser(ctx, req.user, types.Meta{Digest: d, Length: n, Type: "application/json"}, body)
		if err != nil && !errors.Is(err, store.ErrExists) {
			return err
		}
		h.log.Warn("DEV MODE: created user on first publish", "user", string(req.user))
	case err != nil:
		return err
	default:
		var u userRecord
		if json.Unmarshal(rec, &u) != nil || u.Subject != c.Subject {
			return nil // another's namespace: owner() refuses it
		}
	}
	if !c.HasScope(levelWrite, ctxRepos) {
		return nil
	}
	if _, _, err := h.cfg.Registry.Repo(ctx, req.user, req.repo); !errors.Is(err, store.ErrNotFound) {
		return nil
	}
	body := []byte(`{"public":true}`)
	d, n := types.Compute(body)
	err = h.cfg.Registry.CreateRepo(ctx, req.user, req.repo, types.Meta{Digest: d, Length: n, Type: "application/json"}, body)
	if err != nil && !errors.Is(err, store.ErrExists) {
		return err
	}
	h.log.Warn("DEV MODE: created public repository on first publish", "repo", string(req.user)+"/"+string(req.repo))
	return nil
}

// wasmAlias maps tree/main.wasm to the root when a package is a single
// wasm file: upstream enarx deploy asks for {tag}/tree/main.wasm whenever
// the tag's type is application/wasm, but a single-file publish stores the
// file at the root (reference §5.5). The alias only applies when there is
// no real main.wasm node, which a file root cannot have.
func (h *Handler) wasmAlias(r *http.Request, ref store.TagRef, p types.TreePath) types.TreePath {
	if len(p) != 1 || p[0] != "main.wasm" {
		return p
	}
	m, err := h.cfg.Registry.StatNode(r.Context(), ref, types.TreePath{})
	if err != nil || m.Type != types.WasmType {
		return p
	}
	return types.TreePath{}
}

func (h *Handler) tree(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx := r.Context()
	ref := store.TagRef{User: req.user, Repo: req.repo, Tag: req.tag}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if err := h.readable(r, req, true); err != nil {
			return err
		}
		path := h.wasmAlias(r, ref, req.path)
		if r.Method == http.MethodHead {
			m, err := h.cfg.Registry.StatNode(ctx, ref, path)
			if err != nil {
				return getErr(r, err)
			}
			sendMeta(w, m)
			w.WriteHeader(http.StatusOK)
			return nil
		}
		o, err := h.cfg.Registry.Node(ctx, ref, path)
		if err != nil {
			return getErr(r, err)
		}
		return sendObject(w, r, o)
	case http.MethodPut:
		if err := h.owner(r, req, levelWrite, ctxTags); err != nil {
			return err
		}
		m, err := claimedMeta(r, true)
		if err != nil {
			return err
		}
		if m.Length > h.cfg.MaxUploadSize {
			return errorf(http.StatusRequestEntityTooLarge, "Upload larger than %d bytes", h.cfg.MaxUploadSize)
		}
		existed, err := h.cfg.Registry.CreateNode(ctx, ref, req.path, m, bodyReader{r.Body})
		if err := storeErr(err); err != nil {
			return err
		}
		created(w, existed)
		return nil
	}
	return errorf(http.StatusMethodNotAllowed, "Method not allowed for tag tree endpoint")
}
