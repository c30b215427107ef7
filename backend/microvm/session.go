package microvm

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
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/backend/microvm/internal/channel"
	"github.com/enarx-go/enarx/config"
	"github.com/enarx-go/enarx/keep"
)

const (
	// maxStewardDials bounds the Steward connections one Keep may ask for
	// (the identity client retries a few times).
	maxStewardDials    = 16
	stewardDialTimeout = 30 * time.Second
	// drainWait bounds how long the host waits, after the exit status,
	// for the Keep's last output to reach the host's stdout and stderr.
	drainWait = 10 * time.Second
	// maxCachePut bounds one compilation cache file the Keep sends back
	// (the Keep's own bound, guest.maxCacheFile); maxCacheFiles bounds the
	// files it may send back, and the files the host sends it at launch.
	maxCachePut   = 512 << 20
	maxCacheFiles = 64
	// maxCacheBytes bounds everything one Keep writes into the module's
	// cache directory (all its cache-put streams together, every byte
	// received counted, stored or not), and what the host streams from
	// the directory into the next Keep (launch prunes the directory to
	// it, so the directory holds at most this plus one Keep's puts). A
	// microVM Keep runs wazero, which stores two entries per module: its
	// compiled code (wazero-<version>-<arch>-<os>/<key>, about 2.5 times
	// the module) and enarx's instrumented module
	// (enarx-wazero-<tag>/<sha256>, about the module's size); Go's 2.6 MB
	// hello takes 9 MB for both. Each entry is bounded by maxCachePut, so
	// two entries at that bound: 1 GiB, which any legitimate Keep fits.
	maxCacheBytes = 2 * maxCachePut
	// staleCacheTemp is the age after which launch removes a temporary
	// (dot) file of the cache directory: a host that died mid-write left
	// it (a younger one may belong to a Keep still sending).
	staleCacheTemp = time.Hour
	// maxKeepLogs and maxKeepLogBytes bound the log records, and their
	// encoded bytes, that the host relays from one Keep (a Keep controlled
	// by its workload could flood the host's logs: 10 000 records of a
	// frame's 64 KiB each would be 655 MB). A Keep's own records are a few
	// hundred bytes.
	maxKeepLogs     = 10000
	maxKeepLogBytes = 4 << 20
)

// session is the host's side of one Keep's channel: it sends the launch,
// the workload and the streams of the Keep's files, relays connections,
// and collects the Keep's logs and exit status. Everything the Keep sends
// is treated as hostile (a workload that escaped wasm could control the
// guest kernel): log text is re-logged as values, streams are bounded by
// the protocol, and the Keep can make the host connect only to the
// Steward its config names.
type session struct {
	mux *channel.Mux
	l   *backend.Launch
	log *slog.Logger

	// stewardAddr is where RoleSteward streams go ("" refuses them).
	stewardAddr string
	// cacheDir is the module's compilation cache on the host ("" = none);
	// the Keep may send files back into it.
	cacheDir string
	// collateral are files for the Keep's evidence (name → contents).
	collateral map[string][]byte
	// compileSlowdown is the Keep's channel.Launch.CompileSlowdown.
	compileSlowdown int

	hello chan channel.Hello
	exit  chan channel.Exit

	mu       sync.Mutex
	helloed  bool
	exited   bool
	dials    int
	puts     int
	logs     int
	logBytes int            // the encoded size of the logs
	logsOver bool           // past maxKeepLogs or maxKeepLogBytes
	outputs  sync.WaitGroup // stdout/stderr pumps and cache files from the Keep
	others   sync.WaitGroup // every other goroutine
	done     chan struct{}
	doneOnce sync.Once

	// cacheBudget bounds the bytes of cache files the host sends the
	// Keep at launch, and those the Keep may send back on cache-put
	// streams (maxCacheBytes; tests lower it). putBytes counts the latter
	// (under mu); putOver records that the Keep exceeded the budget.
	cacheBudget int64
	putBytes    int64
	putOver     bool
}

func newSession(conn io.ReadWriteCloser, l *backend.Launch, log *slog.Logger) *session {
	s := &session{l: l, log: log, hello: make(chan channel.Hello, 1), exit: make(chan channel.Exit, 1), done: make(chan struct{}), cacheBudget: maxCacheBytes}
	s.mux = channel.New(conn, channel.Host, channel.Handler{Control: s.control, Open: s.open})
	return s
}

// control handles the Keep's control frames.
func (s *session) control(typ uint8, payload []byte) error {
	switch typ {
	case channel.TypeHello:
		var h channel.Hello
		if err := channel.Decode(payload, &h); err != nil {
			return err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.helloed {
			return fmt.Errorf("%w: a second hello", channel.ErrProtocol)
		}
		s.helloed = true
		s.hello <- h
		return nil
	case channel.TypeLog:
		var l channel.Log
		if err := channel.Decode(payload, &l); err != nil {
			return err
		}
		s.mu.Lock()
		s.logs++
		s.logBytes += len(payload)
		over := s.logs > maxKeepLogs || s.logBytes > maxKeepLogBytes
		first := over && !s.logsOver
		s.logsOver = s.logsOver || over
		s.mu.Unlock()
		if over {
			if first {
				s.log.Warn("microVM: the Keep sent more log records than the host keeps; the rest are dropped", "max_records", maxKeepLogs, "max_bytes", maxKeepLogBytes)
			}
			return nil
		}
		args := make([]any, 0, len(l.Attrs)+2)
		for i := 0; i+1 < len(l.Attrs); i += 2 {
			args = append(args, slog.String(l.Attrs[i], l.Attrs[i+1]))
		}
		s.log.Log(context.Background(), slog.Level(l.Level), "keep: "+l.Msg, args...)
		return nil
	case channel.TypeExit:
		var e channel.Exit
		if err := channel.Decode(payload, &e); err != nil {
			return err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.exited {
			return fmt.Errorf("%w: a second exit status", channel.ErrProtocol)
		}
		s.exited = true
		s.exit <- e
		return nil
	}
	return fmt.Errorf("%w: control frame type %d from the Keep", channel.ErrProtocol, typ)
}

// open handles streams the Keep opens: connections to the Steward and
// compilation cache files.
func (s *session) open(st *channel.Stream, o channel.Open) error {
	switch o.Role {
	case channel.RoleSteward:
		s.mu.Lock()
		s.dials++
		n := s.dials
		s.mu.Unlock()
		if s.stewardAddr == "" {
			return errors.New("this Keep has no Steward to connect to")
		}
		if n > maxStewardDials {
			return fmt.Errorf("more than %d connections to the Steward", maxStewardDials)
		}
		s.others.Add(1)
		go func() {
			defer s.others.Done()
			s.dialSteward(st)
		}()
		return nil
	case channel.RoleCachePut:
		s.mu.Lock()
		s.puts++
		n := s.puts
		over := s.putOver
		exited := s.exited
		s.mu.Unlock()
		// The Keep sends these before its exit status, and drain waits
		// for them once the host has it. This runs on the channel's
		// reading goroutine, as control does for the exit status: after
		// it, no stream may join what drain waits for (an Add concurrent
		// with outputs.Wait panics the host).
		if exited {
			return errors.New("cache file refused: the Keep already sent its exit status")
		}
		if s.cacheDir == "" || n > maxCacheFiles || over || !cacheName(o.Name) {
			return errors.New("cache file refused")
		}
		s.outputs.Add(1)
		go func() {
			defer s.outputs.Done()
			s.cachePut(st, o.Name)
		}()
		return nil
	}
	return fmt.Errorf("the host does not accept %q streams from the Keep", o.Role)
}

func (s *session) dialSteward(st *channel.Stream) {
	ctx, cancel := context.WithTimeout(context.Background(), stewardDialTimeout)
	defer cancel()
	d := net.Dialer{}
	c, err := d.DialContext(ctx, "tcp", s.stewardAddr)
	if err != nil {
		s.log.Warn("microVM: connecting to the Steward for the Keep failed", "addr", s.stewardAddr, "err", err)
		st.Reset(err.Error())
		return
	}
	relay(c.(*net.TCPConn), st)
}

// cacheName reports whether the Keep may name a cache file n: a valid
// file name (channel.ValidFileName) none of whose segments starts with a
// dot (the host's temporary files do, and cacheFiles skips them).
func cacheName(n string) bool {
	if !channel.ValidFileName(n) {
		return false
	}
	for _, seg := range strings.Split(n, "/") {
		if strings.HasPrefix(seg, ".") {
			return false
		}
	}
	return true
}

// errCacheBudget: the Keep sent more than cacheBudget on cache-put streams.
var errCacheBudget = errors.New("the Keep sent more compilation cache than the host keeps")

func (s *session) cachePut(st *channel.Stream, name string) {
	defer st.Close() // after an error: the Keep's further writes fail
	if err := s.storeCacheFile(st, name); err != nil {
		s.log.Debug("microVM: storing a compilation cache file", "name", name, "err", err)
	}
}

// storeCacheFile streams r into the cache file name: into a temporary
// file beside it, renamed into place once r ended within maxCachePut and
// the session's budget; nothing is left on any error.
func (s *session) storeCacheFile(r io.Reader, name string) (err error) {
	p := filepath.Join(s.cacheDir, filepath.FromSlash(name))
	dir := filepath.Dir(p)
	var f *os.File
	for try := 0; ; try++ {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		f, err = os.CreateTemp(dir, ".put-*") // mode 0600
		// A launch removes empty directories (cacheFiles): again if it
		// took this one between the two calls.
		if err == nil || !errors.Is(err, os.ErrNotExist) || try == 2 {
			break
		}
	}
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil {
			os.Remove(tmp)
		}
	}()
	n, err := io.Copy(putWriter{s, f}, io.LimitReader(r, maxCachePut+1))
	if err != nil {
		return err
	}
	if n > maxCachePut {
		return fmt.Errorf("a cache file of more than %d bytes", maxCachePut)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	err, f = f.Close(), nil
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// putWriter writes a cache-put stream to its temporary file, charging
// every byte to the session's budget first.
type putWriter struct {
	s *session
	f *os.File
}

func (w putWriter) Write(p []byte) (int, error) {
	s := w.s
	s.mu.Lock()
	if s.putOver || s.putBytes+int64(len(p)) > s.cacheBudget {
		warn := !s.putOver
		s.putOver = true
		s.mu.Unlock()
		if warn {
			s.log.Warn("microVM: the Keep sent more compilation cache than the host keeps; the rest is refused", "max", s.cacheBudget)
		}
		return 0, errCacheBudget
	}
	s.putBytes += int64(len(p))
	s.mu.Unlock()
	return w.f.Write(p)
}

// run drives the session until the Keep reports its exit status, the
// channel ends or ctx is done. booted is closed when the Keep said hello.
func (s *session) run(ctx context.Context, booted chan<- channel.Hello) (int, error) {
	defer s.finish()
	runErr := make(chan error, 1)
	go func() { runErr <- s.mux.Run() }()

	var hello channel.Hello
	select {
	case hello = <-s.hello:
	case err := <-runErr:
		return 1, fmt.Errorf("the Keep ended its channel before it started: %w", err)
	case <-ctx.Done():
		return 1, context.Cause(ctx)
	}
	if hello.Version != channel.Version {
		return 1, fmt.Errorf("the Keep speaks channel version %d, this enarx %d: rebuild the Keep image (make keep-image)", hello.Version, channel.Version)
	}
	if booted != nil {
		booted <- hello
	}
	if err := s.launch(); err != nil {
		return 1, err
	}
	select {
	case e := <-s.exit:
		// The Keep powers off once it knows the host has its status.
		s.mux.Send(channel.TypeExitAck, nil)
		s.drain()
		var err error
		if e.Error != "" {
			err = errors.New(e.Error)
		}
		return e.Code, err
	case err := <-runErr:
		return 1, fmt.Errorf("the Keep's channel failed: %w", err)
	case <-ctx.Done():
		return 1, context.Cause(ctx)
	}
}

// finish ends the session: the channel, and with it every relay.
func (s *session) finish() {
	s.doneOnce.Do(func() { close(s.done) })
	s.mux.Close()
}

// drain waits (bounded) for the Keep's output streams to reach the host,
// and for the compilation cache files it sent to be stored.
func (s *session) drain() {
	done := make(chan struct{})
	go func() { s.outputs.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(drainWait):
		s.log.Warn("microVM: the Keep's output did not finish after its exit status")
	}
}

// launch sends the launch message, then the workload and the file streams.
func (s *session) launch() error {
	l := s.l
	msg := channel.Launch{
		Version:     channel.Version,
		HasConfig:   l.Workload.Config != nil,
		ConfigName:  l.Workload.ConfigName,
		HasBundle:   l.Workload.Bundle != nil,
		Package:     l.Workload.Package,
		Args:        l.Options.Args,
		Env:         l.Options.Env,
		MemoryLimit: l.Options.MemoryLimit,
		Engine:      l.Options.Engine,
		LogLevel:    logLevel(l.Options.Logger),
		Steward:     s.stewardAddr != "",
		CachePut:    s.cacheDir != "",
		VolumeKeys:  l.Options.VolumeKeys,

		CompileSlowdown: s.compileSlowdown,
	}
	cache := cacheFiles(s.cacheDir, s.cacheBudget)
	sending := false // the blob goroutine closes the files
	defer func() {
		if !sending {
			for _, f := range cache {
				f.f.Close()
			}
		}
	}()
	for _, f := range cache {
		msg.Cache = append(msg.Cache, channel.CacheFile{Name: f.name, Size: f.size})
	}
	names := make([]string, 0, len(s.collateral))
	for n := range s.collateral {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		msg.Collateral = append(msg.Collateral, channel.CacheFile{Name: n, Size: int64(len(s.collateral[n]))})
	}
	launch := channel.Encode(msg)
	if len(launch) > channel.MaxPayload {
		return fmt.Errorf("the launch message (the workload's arguments, environment and volume keys) is %d bytes encoded, "+
			"more than the %d a microVM Keep takes in one frame: pass fewer or shorter arguments or environment variables", len(launch), channel.MaxPayload)
	}
	if err := s.mux.Send(channel.TypeLaunch, launch); err != nil {
		return fmt.Errorf("sending the launch to the Keep: %w", err)
	}
	// The blobs go in the order the Keep reads them, on their own
	// goroutine: the Keep reads them while the file streams open.
	var blobs []blob
	if msg.HasConfig {
		blobs = append(blobs, blob{open: channel.Open{Role: channel.RoleConfig}, data: l.Workload.Config})
	}
	if msg.HasBundle {
		blobs = append(blobs, blob{open: channel.Open{Role: channel.RoleBundle}, data: l.Workload.Bundle})
	} else {
		blobs = append(blobs, blob{open: channel.Open{Role: channel.RoleWasm}, data: l.Workload.Wasm})
	}
	for _, f := range cache {
		blobs = append(blobs, blob{open: channel.Open{Role: channel.RoleCache, Name: f.name}, file: f.f, size: f.size})
	}
	for _, n := range names {
		blobs = append(blobs, blob{open: channel.Open{Role: channel.RoleCollateral, Name: n}, data: s.collateral[n]})
	}
	streams := make([]*channel.Stream, len(blobs))
	for i, b := range blobs {
		st, err := s.mux.Open(b.open)
		if err != nil {
			return fmt.Errorf("sending the workload to the Keep: %w", err)
		}
		// The Keep only reads these: what it might send is dropped.
		st.CloseRead()
		streams[i] = st
	}
	sending = true
	s.others.Add(1)
	go func() {
		defer s.others.Done()
		for i, b := range blobs {
			// A Keep in a TEE refuses the cache: fine.
			if b.file != nil {
				io.Copy(streams[i], io.LimitReader(b.file, b.size))
				b.file.Close()
			} else {
				streams[i].Write(b.data)
			}
			streams[i].Close()
		}
	}()
	return s.openFiles()
}

// blob is a stream the host sends at launch: data, or size bytes of file.
type blob struct {
	open channel.Open
	data []byte
	file *os.File
	size int64
}

// cacheFile is an open file of the compilation cache, to send in size bytes.
type cacheFile struct {
	name string
	size int64
	f    *os.File
}

// cacheFiles opens the files of the module's compilation cache directory
// (names as cacheName allows: at most one directory level, as the engine
// writes it) that the host sends into the Keep: the newest first, at most
// maxCacheFiles of them and budget bytes together. It removes the files
// it does not send (too large, past the bounds, or stale temporary files)
// and the directories left empty (a Keep's cache-put makes the directory
// its name has before a byte arrives), so that what Keeps sent back
// cannot pile up. Nothing is read here: the files are streamed from disk.
func cacheFiles(dir string, budget int64) []cacheFile {
	if dir == "" {
		return nil
	}
	type entry struct {
		path, name string
		mod        time.Time
	}
	var found []entry
	var dirs []string
	now := time.Now()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return nil
		}
		rel, rerr := filepath.Rel(dir, p)
		if rerr != nil {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if strings.HasPrefix(d.Name(), ".") {
			// Temporary files of a write (an interrupted one once
			// stale), or what a Keep named so before the host refused
			// such names.
			if info, err := d.Info(); err == nil && now.Sub(info.ModTime()) > staleCacheTemp {
				os.RemoveAll(p)
			}
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if strings.Contains(rel, "/") {
				return filepath.SkipDir // deeper than any name the Keep may use
			}
			dirs = append(dirs, p)
			return nil
		}
		if !d.Type().IsRegular() || !cacheName(rel) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		found = append(found, entry{p, rel, info.ModTime()})
		return nil
	})
	sort.Slice(found, func(i, j int) bool {
		if !found[i].mod.Equal(found[j].mod) {
			return found[i].mod.After(found[j].mod)
		}
		return found[i].name < found[j].name
	})
	var out []cacheFile
	var total int64
	for _, e := range found {
		f, err := os.OpenFile(e.path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			continue
		}
		info, err := f.Stat()
		if err != nil || !info.Mode().IsRegular() {
			f.Close()
			continue
		}
		if len(out) >= maxCacheFiles || info.Size() > maxCachePut || total+info.Size() > budget {
			f.Close()
			os.Remove(e.path)
			continue
		}
		total += info.Size()
		out = append(out, cacheFile{e.name, info.Size(), f})
	}
	for _, d := range dirs {
		// Only an empty directory goes (a put that made it just now
		// makes it again, storeCacheFile).
		os.Remove(d)
	}
	return out
}

// openFiles opens a stream for every stdio and connect entry and starts
// relaying the listen entries' connections.
func (s *session) openFiles() error {
	cfg := s.l.Config
	if cfg == nil {
		cfg = config.Default()
	}
	if len(s.l.Files) != len(cfg.Files) {
		return fmt.Errorf("the host opened %d files for %d [[files]] entries", len(s.l.Files), len(cfg.Files))
	}
	for i, f := range cfg.Files {
		hf := s.l.Files[i]
		if f.Kind == config.KindNull || f.Kind == config.KindDir && hf == nil { // a memory dir lives in the Keep
			continue
		}
		if hf == nil {
			return fmt.Errorf("fd %d (%s %q): the host opened nothing", i, f.Kind, f.Name)
		}
		switch f.Kind {
		case config.KindStdin, config.KindStdout, config.KindStderr:
			st, err := s.mux.Open(channel.Open{Role: channel.RoleFile, FD: i, Filetype: uint8(keep.FiletypeOf(hf))})
			if err != nil {
				return err
			}
			if f.Kind == config.KindStdin {
				// The Keep only reads its stdin: what it might send
				// is dropped.
				st.CloseRead()
				s.others.Add(1)
				go func() { defer s.others.Done(); s.pumpIn(hf, st) }()
			} else {
				s.outputs.Add(1)
				go func() { defer s.outputs.Done(); pumpOut(st, hf) }()
			}
		case config.KindConnect:
			c, err := net.FileConn(hf)
			if err != nil {
				return fmt.Errorf("fd %d (connect %q): %w", i, f.Name, err)
			}
			tc, ok := c.(*net.TCPConn)
			if !ok {
				c.Close()
				return fmt.Errorf("fd %d (connect %q): not a TCP connection", i, f.Name)
			}
			st, err := s.mux.Open(channel.Open{Role: channel.RoleFile, FD: i, Peer: tc.RemoteAddr().String()})
			if err != nil {
				tc.Close()
				return err
			}
			s.others.Add(1)
			go func() { defer s.others.Done(); relay(tc, st) }()
		case config.KindDir:
			// The guest has no host file system: the host serves the
			// directory on a stream, beneath it whatever the Keep asks.
			st, err := s.mux.Open(channel.Open{Role: channel.RoleFile, FD: i})
			if err != nil {
				return err
			}
			ro := f.Dir != nil && f.Dir.ReadOnly
			s.others.Add(1)
			go func() { defer s.others.Done(); s.serveDir(i, hf, ro, st) }()
		case config.KindListen:
			ln, err := net.FileListener(hf)
			if err != nil {
				return fmt.Errorf("fd %d (listen %q): %w", i, f.Name, err)
			}
			s.others.Add(1)
			go func() { defer s.others.Done(); s.serveListener(ln, i) }()
		}
	}
	return nil
}

// serveDir serves the host directory of dir entry i on st until the Keep
// closes it or the session ends.
func (s *session) serveDir(i int, dir *os.File, readOnly bool, st *channel.Stream) {
	go func() {
		<-s.done
		st.Close()
	}()
	if err := keep.ServeDir(dir, readOnly, st); err != nil {
		select {
		case <-s.done: // the session's end closed the stream
		default:
			s.log.Warn("microVM: serving a directory to the Keep failed", "fd", i, "err", err)
			st.Reset(err.Error())
			return
		}
	}
	st.Close()
}

// serveListener accepts connections for listen entry i and relays each
// over a new stream until the session ends.
func (s *session) serveListener(ln net.Listener, i int) {
	go func() {
		<-s.done
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			s.log.Warn("microVM: accepting a connection failed", "fd", i, "err", err)
			return
		}
		st, err := s.mux.Open(channel.Open{Role: channel.RoleFile, FD: i, Peer: c.RemoteAddr().String()})
		if err != nil {
			c.Close()
			if s.mux.Err() != nil {
				return
			}
			continue
		}
		s.others.Add(1)
		go func() { defer s.others.Done(); relay(c.(*net.TCPConn), st) }()
	}
}

// pumpIn copies the host's stdin to the Keep. It waits for input with
// poll, so that it notices the end of the session without a read that
// might never return, and never changes the descriptor's flags (the host
// shares its stdin with other processes).
func (s *session) pumpIn(f *os.File, st *channel.Stream) {
	defer st.CloseWrite()
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, channel.MaxData)
	for {
		var ready bool
		var perr error
		rc.Control(func(fd uintptr) {
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, err := unix.Poll(pfd, 100)
			ready, perr = n > 0, err
		})
		select {
		case <-s.done:
			return
		default:
		}
		if perr != nil && perr != unix.EINTR {
			return
		}
		if !ready {
			continue
		}
		var n int
		var rerr error
		rc.Control(func(fd uintptr) { n, rerr = unix.Read(int(fd), buf) })
		if n > 0 {
			if _, err := st.Write(buf[:n]); err != nil {
				return
			}
		}
		if rerr == unix.EAGAIN || rerr == unix.EINTR {
			continue
		}
		if n == 0 || rerr != nil {
			return
		}
	}
}

// pumpOut copies a Keep output stream to the host file.
func pumpOut(st *channel.Stream, f *os.File) {
	defer st.Close()
	if _, err := io.Copy(f, st); err != nil {
		st.CloseRead()
	}
}

// relay copies a TCP connection and a stream both ways, with half-closes
// passed on, until both directions have ended. Once the Keep can read
// nothing more (it stopped reading, closed or reset the stream, or the
// channel ended) the host stops reading c: otherwise a remote end that
// neither sends nor closes would keep the connection, the stream and
// these goroutines, beyond the session's end.
func relay(c *net.TCPConn, st *channel.Stream) {
	go func() {
		<-st.WriteClosed() // at the latest when st.Close below runs
		c.CloseRead()
	}()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, err := io.Copy(st, c)
		switch {
		case err == nil:
			st.CloseWrite()
		case errors.Is(err, syscall.ECONNRESET):
			st.Reset("connection reset by peer")
		default:
			c.CloseRead()
			st.CloseWrite()
		}
	}()
	go func() {
		defer wg.Done()
		_, err := io.Copy(c, st)
		switch {
		case err == nil:
			c.CloseWrite()
		case errors.Is(err, channel.ErrReset):
			c.SetLinger(0) // pass the abort on as a TCP reset
			c.Close()
		default:
			st.CloseRead()
			c.CloseWrite()
		}
	}()
	wg.Wait()
	c.Close()
	st.Close()
}

// logLevel finds the most verbose level logger accepts, so the Keep logs
// at the same level.
func logLevel(l *slog.Logger) string {
	if l == nil {
		return "error"
	}
	for _, lv := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn} {
		if l.Enabled(context.Background(), lv) {
			return lv.String()
		}
	}
	return "error"
}
