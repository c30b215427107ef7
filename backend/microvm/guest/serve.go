// Package guest is the inside of a microVM Keep: the code that runs as PID 1
// of the Keep's Linux guest (cmd/enarx-keep-init). It prepares the guest
// (mounts, the kernel modules of the image, then no more modules), finds the
// virtio-serial port to the host, and serves the channel protocol (package
// microvm/channel): it receives the workload, its config and the streams
// of its files, runs it with the same Keep runtime as every other backend
// (package keep), reports the exit status and powers the VM off.
//
// Trust: everything that comes over the channel is from the untrusted host.
// The workload and config are hashed into the Keep's identity by
// keep.Run, the config is parsed here, every stream is checked against the
// config by keep (and a stdio stream's filetype here, streamFiletype), and
// TLS ends here. The host also reads the guest's console: nothing secret
// goes there, and a crash prints no goroutine stacks (limitTraceback).
// Whether the Keep runs in a TEE is the Keep's own finding (Detect), never
// the host's word, and a Keep in a TEE never runs machine code the host
// supplies (the compilation cache is used only in plain KVM Keeps, whose
// host is trusted with the guest anyway).
// The one thing the host decides is availability: it can stop the VM, or
// delay and refuse streams, at any time.
package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/backend/microvm/internal/channel"
	"github.com/enarx-go/enarx/identity"
	"github.com/enarx-go/enarx/internal/version"
	"github.com/enarx-go/enarx/keep"
)

// Limits on what the host may send.
const (
	MaxModule     = 1 << 30
	maxConfig     = 1 << 20
	maxCacheFile  = 512 << 20
	maxCacheFiles = 64
	maxCollateral = 4 << 20
	// maxExitText bounds the error text of the exit status: escaped as
	// JSON (at worst six bytes a byte) it must fit in one control frame
	// (channel.MaxPayload), or the host never gets the status.
	maxExitText = 8 << 10
	// ackWait bounds how long the Keep waits for the host to confirm the
	// exit status before it powers off anyway.
	ackWait = 10 * time.Second
)

// Env is what the Keep found out about itself before serving.
type Env struct {
	// TEE is "none", "snp" or "tdx" (see Detect).
	TEE string
	// Evidence makes the evidence provider for TEE, given a directory of
	// collateral files from the host; nil for no evidence.
	Evidence func(tee, collateralDir string) (attest.EvidenceProvider, error)
	// TempDir holds the compilation cache and collateral ("" = os.TempDir).
	TempDir string
	// Early are log records from before the channel existed; they are
	// sent first.
	Early []channel.Log
}

// Serve runs one workload over the channel rw and returns its exit status.
// It returns when the workload has ended and the host has its status (or
// the channel has failed).
func Serve(ctx context.Context, rw io.ReadWriteCloser, env Env) int {
	s := &server{env: env, launched: make(chan struct{}), acked: make(chan struct{}), arrived: make(chan struct{}), files: newFiles()}
	s.mux = channel.New(rw, channel.Guest, channel.Handler{Control: s.control, Open: s.open})
	go func() {
		err := s.mux.Run()
		s.files.end(err)
	}()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-s.mux.Done():
			cancel(fmt.Errorf("the channel to the host ended: %w", s.mux.Err()))
		case <-ctx.Done():
		}
	}()
	tee := env.TEE
	if tee == "" {
		tee = "none"
	}
	if err := s.mux.Send(channel.TypeHello, channel.Encode(channel.Hello{Version: channel.Version, Keep: version.Version, TEE: tee})); err != nil {
		return 1
	}
	for _, l := range env.Early {
		s.mux.Send(channel.TypeLog, channel.Encode(l))
	}
	code, err := s.run(ctx)
	// Streams the run never took (it failed early) end now, before the
	// exit status, so the host does not wait for them.
	s.files.closeAll()
	exit := channel.Exit{Code: code}
	if err != nil {
		exit.Error = clip(exitText(err, tee), maxExitText)
	}
	if s.mux.Send(channel.TypeExit, channel.Encode(exit)) == nil {
		select {
		case <-s.acked:
		case <-s.mux.Done():
		case <-time.After(ackWait):
		}
	}
	s.mux.Close()
	return code
}

type server struct {
	env Env
	mux *channel.Mux

	mu       sync.Mutex
	launch   *channel.Launch
	launched chan struct{}
	acked    chan struct{}
	ackOnce  sync.Once
	blobs    map[string]*channel.Stream // role or role/name → stream
	expect   map[string]bool
	arrived  chan struct{} // closed and replaced when a blob stream arrives
	files    *files
}

// control handles the host's control frames (on the reading goroutine).
func (s *server) control(typ uint8, payload []byte) error {
	switch typ {
	case channel.TypeLaunch:
		var l channel.Launch
		if err := channel.Decode(payload, &l); err != nil {
			return err
		}
		if l.Version != channel.Version {
			return fmt.Errorf("%w: the host speaks version %d, this Keep %d", channel.ErrProtocol, l.Version, channel.Version)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.launch != nil {
			return fmt.Errorf("%w: a second launch", channel.ErrProtocol)
		}
		s.launch = &l
		s.blobs = make(map[string]*channel.Stream)
		s.expect = expected(&l)
		close(s.launched)
		return nil
	case channel.TypeExitAck:
		s.ackOnce.Do(func() { close(s.acked) })
		return nil
	}
	return fmt.Errorf("%w: control frame type %d from the host", channel.ErrProtocol, typ)
}

// expected lists the blob streams a launch announces.
func expected(l *channel.Launch) map[string]bool {
	m := map[string]bool{}
	if l.HasConfig {
		m[channel.RoleConfig] = true
	}
	if l.HasBundle {
		m[channel.RoleBundle] = true
	} else {
		m[channel.RoleWasm] = true
	}
	for _, f := range l.Cache {
		m[channel.RoleCache+"/"+f.Name] = true
	}
	for _, f := range l.Collateral {
		m[channel.RoleCollateral+"/"+f.Name] = true
	}
	return m
}

// open routes a stream the host opened (on the reading goroutine).
func (s *server) open(st *channel.Stream, o channel.Open) error {
	switch o.Role {
	case channel.RoleFile:
		return s.files.add(st, o)
	case channel.RoleConfig, channel.RoleWasm, channel.RoleBundle, channel.RoleCache, channel.RoleCollateral:
		key := o.Role
		if o.Role == channel.RoleCache || o.Role == channel.RoleCollateral {
			key += "/" + o.Name
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.launch == nil || !s.expect[key] {
			return fmt.Errorf("unexpected %s stream", key)
		}
		delete(s.expect, key)
		s.blobs[key] = st
		close(s.arrived)
		s.arrived = make(chan struct{})
		return nil
	}
	return fmt.Errorf("the Keep does not accept %q streams", o.Role)
}

// blob waits for the stream key and reads it whole (at most max bytes).
func (s *server) blob(ctx context.Context, key string, max int64) ([]byte, error) {
	for {
		s.mu.Lock()
		st, arrived := s.blobs[key], s.arrived
		s.mu.Unlock()
		if st != nil {
			b, err := io.ReadAll(io.LimitReader(st, max+1))
			st.Close()
			if err != nil {
				return nil, fmt.Errorf("receiving %s from the host: %w", key, err)
			}
			if int64(len(b)) > max {
				return nil, fmt.Errorf("the host sent a %s of more than %d bytes", key, max)
			}
			return b, nil
		}
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-arrived:
		}
	}
}

func (s *server) run(ctx context.Context) (int, error) {
	select {
	case <-s.launched:
	case <-ctx.Done():
		return 1, context.Cause(ctx)
	}
	l := s.launch
	log := slog.New(newLogHandler(s.mux, l.LogLevel))
	w := keep.Workload{ConfigName: l.ConfigName, Package: l.Package}
	var err error
	if l.HasConfig {
		if w.Config, err = s.blob(ctx, channel.RoleConfig, maxConfig); err != nil {
			return 1, err
		}
	}
	t0 := time.Now()
	if l.HasBundle {
		w.Bundle, err = s.blob(ctx, channel.RoleBundle, MaxModule)
	} else {
		w.Wasm, err = s.blob(ctx, channel.RoleWasm, MaxModule)
	}
	if err != nil {
		return 1, err
	}
	log.Debug("workload received", "bytes", len(w.Wasm)+len(w.Bundle)+len(w.Config), "in", time.Since(t0).Round(time.Millisecond))
	tmp := s.env.TempDir
	if tmp == "" {
		tmp = os.TempDir()
	}
	o := keep.Options{Conns: s.files, Args: l.Args, Env: l.Env, VolumeKeys: l.VolumeKeys, MemoryLimit: l.MemoryLimit, Engine: l.Engine, Logger: log, NoCache: true,
		CompileSlowdown: l.CompileSlowdown}

	trusted := s.env.TEE == "none" || s.env.TEE == ""
	var cacheDir string
	var received map[string]bool
	if trusted && (len(l.Cache) > 0 || l.CachePut) {
		cacheDir = filepath.Join(tmp, "cache")
		t := time.Now()
		if received, err = s.receiveFiles(ctx, channel.RoleCache, l.Cache, cacheDir, maxCacheFile, maxCacheFiles); err != nil {
			return 1, err
		}
		log.Debug("compilation cache received", "files", len(received), "in", time.Since(t).Round(time.Millisecond))
		o.CacheDir, o.NoCache = cacheDir, false
	} else if len(l.Cache) > 0 {
		// In a TEE the host is not trusted with machine code.
		log.Info("ignoring the host's compilation cache: this Keep runs in a TEE", "tee", s.env.TEE)
		s.discard(channel.RoleCache, l.Cache)
	}
	if s.env.Evidence != nil {
		dir := filepath.Join(tmp, "collateral")
		if _, err := s.receiveFiles(ctx, channel.RoleCollateral, l.Collateral, dir, maxCollateral, maxCacheFiles); err != nil {
			return 1, err
		}
		if o.Evidence, err = s.env.Evidence(s.env.TEE, dir); err != nil {
			return 1, err
		}
	} else {
		s.discard(channel.RoleCollateral, l.Collateral)
	}
	if l.Steward {
		o.Identity = func(ctx context.Context, req identity.Request) (*identity.Identity, error) {
			req.Dial = s.dialSteward
			return identity.Establish(ctx, req)
		}
	}
	code, runErr := keep.Run(ctx, w, o)
	if l.CachePut && cacheDir != "" {
		if err := s.putCache(cacheDir, received); err != nil {
			log.Warn("sending the compilation cache to the host failed", "err", err)
		}
	}
	return code, runErr
}

// receiveFiles writes the announced files of a role into dir.
func (s *server) receiveFiles(ctx context.Context, role string, list []channel.CacheFile, dir string, max int64, maxFiles int) (map[string]bool, error) {
	if len(list) > maxFiles {
		return nil, fmt.Errorf("the host announced %d %s files (at most %d)", len(list), role, maxFiles)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	got := map[string]bool{}
	for _, f := range list {
		if !channel.ValidFileName(f.Name) {
			return nil, fmt.Errorf("the host sent a %s file named %q", role, f.Name)
		}
		b, err := s.blob(ctx, role+"/"+f.Name, max)
		if err != nil {
			return nil, err
		}
		p := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return nil, err
		}
		got[f.Name] = true
	}
	return got, nil
}

// discard drops announced streams the Keep will not use.
func (s *server) discard(role string, list []channel.CacheFile) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range list {
		key := role + "/" + f.Name
		delete(s.expect, key)
		if st := s.blobs[key]; st != nil {
			st.Close()
			delete(s.blobs, key)
		}
	}
}

// putCache sends the files the engine added to the cache back to the host.
func (s *server) putCache(dir string, had map[string]bool) error {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !had[rel] && channel.ValidFileName(rel) {
			names = append(names, rel)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(n)))
		if err != nil || int64(len(b)) > maxCacheFile {
			continue
		}
		st, err := s.mux.Open(channel.Open{Role: channel.RoleCachePut, Name: n})
		if err != nil {
			return err
		}
		if _, err := st.Write(b); err != nil {
			st.Close()
			return err
		}
		st.Close()
	}
	return nil
}

// dialSteward asks the host for a connection to the Steward that
// Enarx.toml names. The host chooses nothing: it may only connect there.
func (s *server) dialSteward(ctx context.Context) (net.Conn, error) {
	st, err := s.mux.Open(channel.Open{Role: channel.RoleSteward})
	if err != nil {
		return nil, fmt.Errorf("asking the host to connect to the Steward: %w", err)
	}
	return stewardConn{st}, nil
}

// stewardConn names the host's reason when it could not connect.
type stewardConn struct{ *channel.Stream }

func (c stewardConn) Read(p []byte) (int, error) {
	n, err := c.Stream.Read(p)
	if errors.Is(err, channel.ErrReset) {
		return n, fmt.Errorf("the host could not connect to the Steward: %s", c.PeerResetReason())
	}
	return n, err
}

// goStackMarker is the line before which wazero puts the Go stack trace
// (debug.Stack) of a Go runtime error it recovered in a host function
// (wazero's internal wasmdebug.GoRuntimeErrorTracePrefix;
// TestExitTextInTEE checks it against wazero's own output).
const goStackMarker = "Go runtime stack trace:"

// exitText is the error text of the exit status the host reads. A Keep in
// a TEE (tee neither "" nor "none") leaves out the Go stack trace wazero
// adds to a Go runtime error in a host function: its frames show argument
// words, which can be the workload's data or words of keys, as a
// traceback on the console would (quietCrashOutput).
func exitText(err error, tee string) string {
	s := err.Error()
	if tee == "" || tee == "none" {
		return s
	}
	if i := strings.Index(s, goStackMarker); i >= 0 {
		return s[:i] + "(the Go stack trace is not shown: this Keep runs in a TEE)"
	}
	return s
}
