package microvm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/backend/microvm/internal/channel"
	"github.com/enarx-go/enarx/config"
	"github.com/enarx-go/enarx/keep"
)

// hostileKeep connects a host session (its channel run, not its launch) to
// a Keep end driven by the test, and returns both.
func hostileKeep(t *testing.T, cacheDir string, budget int64, h channel.Handler) (*session, *channel.Mux) {
	t.Helper()
	hostEnd, keepEnd := socketPair(t)
	if h.Control == nil {
		h.Control = func(uint8, []byte) error { return nil }
	}
	if h.Open == nil {
		h.Open = func(*channel.Stream, channel.Open) error { return errors.New("refused") }
	}
	k := channel.New(keepEnd, channel.Guest, h)
	go k.Run()
	l := &backend.Launch{Workload: keep.Workload{Wasm: []byte("\x00asm\x01\x00\x00\x00")}, Config: &config.Config{}}
	s := newSession(hostEnd, l, slog.New(slog.DiscardHandler))
	s.cacheDir = cacheDir
	s.cacheBudget = budget
	t.Cleanup(func() {
		k.Close()
		s.finish()
		s.others.Wait()
		s.outputs.Wait()
	})
	return s, k
}

// cacheContents lists the files beneath dir with their sizes.
func cacheContents(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	m := map[string]int64{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		m[filepath.ToSlash(rel)] = info.Size()
		return nil
	})
	return m
}

// TestCachePutBudget: a hostile Keep opens the most cache-put streams it
// may at once, and more, each with more than its share of the session's
// budget, and names some files with a leading dot. The host stores at
// most the budget in all, nothing under a dot name, and leaves no
// temporary file.
func TestCachePutBudget(t *testing.T) {
	const budget = 1 << 20
	dir := t.TempDir()
	s, k := hostileKeep(t, dir, budget, channel.Handler{})
	go s.mux.Run()
	names := []string{".hidden", "dir/.hidden", ".dir/x"}
	for i := range maxCacheFiles + 5 {
		names = append(names, fmt.Sprintf("wazero-v1/%03d", i))
	}
	body := bytes.Repeat([]byte("compiled"), 256<<10/8)
	// Three files within the budget are stored.
	for _, n := range []string{"wazero-v1/one", "wazero-v1/two", "enarx-wazero-1/three"} {
		st, err := k.Open(channel.Open{Role: channel.RoleCachePut, Name: n})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Write(body); err != nil {
			t.Fatal(err)
		}
		st.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(cacheContents(t, dir)) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the host stored %v", cacheContents(t, dir))
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Then the flood.
	var wg sync.WaitGroup
	for _, n := range names {
		st, err := k.Open(channel.Open{Role: channel.RoleCachePut, Name: n})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.Write(body) // fails once the host refuses
			st.Close()
		}()
	}
	wg.Wait()
	waitOutputs(t, s)
	var total int64
	for n, size := range cacheContents(t, dir) {
		if strings.HasPrefix(n, ".") || strings.Contains(n, "/.") {
			t.Errorf("the host stored or left %s (%d bytes)", n, size)
		}
		if size != int64(len(body)) {
			t.Errorf("the host stored a partial %s (%d bytes)", n, size)
		}
		total += size
	}
	if total > budget {
		t.Fatalf("the host stored %d bytes for a Keep (budget %d)", total, budget)
	}
	if total < 3*int64(len(body)) {
		t.Fatalf("the host stored %d bytes, not the first three files", total)
	}
	t.Logf("stored %d bytes of %d sent", total, len(names)*len(body))
}

// waitOutputs waits for the host to finish storing cache files.
func waitOutputs(t *testing.T, s *session) {
	t.Helper()
	done := make(chan struct{})
	go func() { s.outputs.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the host did not finish storing the cache files")
	}
}

// TestCachePutStreamsToDisk: a cache file is written to disk as it
// arrives, not gathered in the host's memory, and a file whose stream
// fails leaves nothing behind.
func TestCachePutStreamsToDisk(t *testing.T) {
	dir := t.TempDir()
	s, k := hostileKeep(t, dir, maxCacheBytes, channel.Handler{})
	go s.mux.Run()
	st, err := k.Open(channel.Open{Role: channel.RoleCachePut, Name: "wazero-v1/big"})
	if err != nil {
		t.Fatal(err)
	}
	const sent = 4 << 20
	if _, err := st.Write(make([]byte, sent)); err != nil {
		t.Fatal(err)
	}
	// The stream stays open: the whole file has not arrived.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var onDisk int64
		for n, size := range cacheContents(t, dir) {
			if n == "wazero-v1/big" {
				t.Fatal("the host stored a file whose stream has not ended")
			}
			onDisk += size
		}
		if onDisk >= sent-channel.Window {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the %d bytes the host received are on disk", onDisk, sent)
		}
		time.Sleep(10 * time.Millisecond)
	}
	st.Reset("changed my mind")
	waitOutputs(t, s)
	if c := cacheContents(t, dir); len(c) != 0 {
		t.Fatalf("an aborted cache file left %v", c)
	}
}

// TestCacheLaunchBudget: at launch the host sends at most the budget of
// cache files (the newest), streamed from disk, and removes the rest:
// files past the budget or the count, files larger than a cache file may
// be, and stale temporary files.
func TestCacheLaunchBudget(t *testing.T) {
	const budget = 1 << 20
	dir := t.TempDir()
	old := time.Now().Add(-2 * time.Hour)
	write := func(name string, size int, age time.Duration) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, bytes.Repeat([]byte(name[len(name)-1:]), size), 0o600); err != nil {
			t.Fatal(err)
		}
		mt := time.Now().Add(-age)
		os.Chtimes(p, mt, mt)
	}
	// Newest first: a, b fit the budget; c does not.
	write("w/a", 400<<10, 1*time.Minute)
	write("w/b", 400<<10, 2*time.Minute)
	write("w/c", 400<<10, 3*time.Minute)
	for i := range maxCacheFiles {
		write(fmt.Sprintf("t/%03d", i), 100, 10*time.Minute)
	}
	// Larger than a cache file may be (sparse: nothing is read).
	huge := filepath.Join(dir, "w", "huge")
	if err := os.WriteFile(huge, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Truncate(huge, maxCachePut+1)
	write("w/.put-stale", 10, 2*time.Hour)
	write("w/.put-fresh", 10, 0)
	write(".evil/x", 10, 2*time.Hour)
	os.Chtimes(filepath.Join(dir, ".evil"), old, old)

	var mu sync.Mutex
	var launch channel.Launch
	received := map[string][]byte{}
	launched := make(chan struct{})
	s, k := hostileKeep(t, dir, budget, channel.Handler{
		Control: func(typ uint8, p []byte) error {
			if typ == channel.TypeLaunch {
				if err := channel.Decode(p, &launch); err != nil {
					return err
				}
				close(launched)
			}
			return nil
		},
		Open: func(st *channel.Stream, o channel.Open) error {
			go func() {
				b, _ := io.ReadAll(st)
				st.Close()
				if o.Role == channel.RoleCache {
					mu.Lock()
					received[o.Name] = b
					mu.Unlock()
				}
			}()
			return nil
		},
	})
	code := make(chan int, 1)
	go func() {
		c, _ := s.run(context.Background(), nil)
		code <- c
	}()
	if err := k.Send(channel.TypeHello, channel.Encode(channel.Hello{Version: channel.Version, TEE: "none"})); err != nil {
		t.Fatal(err)
	}
	select {
	case <-launched:
	case <-time.After(10 * time.Second):
		t.Fatal("no launch")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(received)
		mu.Unlock()
		if n == len(launch.Cache) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d cache files of %d arrived", n, len(launch.Cache))
		}
		time.Sleep(5 * time.Millisecond)
	}
	k.Send(channel.TypeExit, channel.Encode(channel.Exit{Code: 0}))
	<-code

	var total int64
	for _, f := range launch.Cache {
		total += f.Size
		if got := received[f.Name]; int64(len(got)) != f.Size {
			t.Errorf("%s: %d bytes announced, %d received", f.Name, f.Size, len(got))
		}
		if want, _ := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Name))); !bytes.Equal(received[f.Name], want) {
			t.Errorf("%s: the Keep received other bytes than the file's", f.Name)
		}
	}
	if total > budget || len(launch.Cache) > maxCacheFiles {
		t.Fatalf("the host sent %d files, %d bytes (budget %d bytes, %d files)", len(launch.Cache), total, budget, maxCacheFiles)
	}
	announced := map[string]bool{}
	for _, f := range launch.Cache {
		announced[f.Name] = true
	}
	if !announced["w/a"] || !announced["w/b"] || announced["w/c"] || announced["w/huge"] {
		t.Errorf("the host sent %v", launch.Cache)
	}
	left := cacheContents(t, dir)
	for _, gone := range []string{"w/c", "w/huge", "w/.put-stale", ".evil/x"} {
		if _, ok := left[gone]; ok {
			t.Errorf("%s was not removed", gone)
		}
	}
	if _, ok := left["w/.put-fresh"]; !ok {
		t.Error("a temporary file of a write that may be under way was removed")
	}
	for n := range left {
		if !announced[n] && n != "w/.put-fresh" {
			t.Errorf("%s was neither sent nor removed", n)
		}
	}
}

// TestCachePutAfterExitRefused: a Keep sends its compilation cache before
// its exit status. Once the host has the status it waits (drain) for the
// cache files opened before it; one opened after it is refused, so that a
// hostile Keep cannot add to what the host waits for while it waits (a
// sync.WaitGroup Add concurrent with its Wait, which can panic the host).
func TestCachePutAfterExitRefused(t *testing.T) {
	dir := t.TempDir()
	s, k := hostileKeep(t, dir, maxCacheBytes, channel.Handler{})
	code := make(chan int, 1)
	go func() {
		c, _ := s.run(context.Background(), nil)
		code <- c
	}()
	if err := k.Send(channel.TypeHello, channel.Encode(channel.Hello{Version: channel.Version, TEE: "none"})); err != nil {
		t.Fatal(err)
	}
	put := func(name string) (*channel.Stream, error) {
		st, err := k.Open(channel.Open{Role: channel.RoleCachePut, Name: name})
		if err != nil {
			t.Fatal(err)
		}
		_, err = st.Write([]byte("compiled " + name))
		return st, err
	}
	before, err := put("wazero-v1/before") // still open when the status is sent
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(cacheContents(t, dir)) == 0 { // the host's temporary file
		if time.Now().After(deadline) {
			t.Fatal("the host did not start storing the cache file")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := k.Send(channel.TypeExit, channel.Encode(channel.Exit{Code: 3})); err != nil {
		t.Fatal(err)
	}
	after, err := put("wazero-v1/after") // fails if the host's refusal came first
	if err == nil {
		after.CloseWrite()
		// The host's answer to the late stream comes before the end
		// of the one it waits for.
		after.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = after.Read(make([]byte, 1))
	}
	before.Close()
	select {
	case c := <-code:
		if c != 3 {
			t.Errorf("exit code %d; want 3", c)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the session did not end")
	}
	waitOutputs(t, s)
	got := cacheContents(t, dir)
	if _, ok := got["wazero-v1/before"]; !ok {
		t.Errorf("the cache file sent before the exit status was not stored: %v", got)
	}
	if _, ok := got["wazero-v1/after"]; ok || !errors.Is(err, channel.ErrReset) {
		t.Errorf("a cache file opened after the exit status was accepted (stored %v; the Keep's read: %v)", got, err)
	}
}

// TestCachePutAfterExitDoesNotPanicHost: a hostile Keep that keeps
// opening cache-put streams while the host waits for the ones it opened
// before its exit status must not make the host's wait panic ("WaitGroup
// is reused before previous Wait has returned").
func TestCachePutAfterExitDoesNotPanicHost(t *testing.T) {
	for range 30 {
		dir := t.TempDir()
		s, k := hostileKeep(t, dir, maxCacheBytes, channel.Handler{})
		code := make(chan int, 1)
		go func() {
			c, _ := s.run(context.Background(), nil)
			code <- c
		}()
		k.Send(channel.TypeHello, channel.Encode(channel.Hello{Version: channel.Version, TEE: "none"}))
		a, err := k.Open(channel.Open{Role: channel.RoleCachePut, Name: "w/a"})
		if err != nil {
			t.Fatal(err)
		}
		a.Write([]byte("x"))
		deadline := time.Now().Add(10 * time.Second)
		for len(cacheContents(t, dir)) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the host did not start storing the cache file")
			}
			time.Sleep(time.Millisecond)
		}
		k.Send(channel.TypeExit, channel.Encode(channel.Exit{}))
		time.Sleep(2 * time.Millisecond) // the host waits for a
		a.Close()
		for j := range maxCacheFiles - 1 {
			b, err := k.Open(channel.Open{Role: channel.RoleCachePut, Name: fmt.Sprintf("w/b%d", j)})
			if err != nil {
				break // the session ended
			}
			b.Close()
			time.Sleep(time.Duration(j%7) * 100 * time.Microsecond)
		}
		select {
		case <-code:
		case <-time.After(30 * time.Second):
			t.Fatal("the session did not end")
		}
	}
}

// emptyDirs lists the directories beneath dir that hold nothing.
func emptyDirs(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() || p == dir {
			return nil
		}
		if ents, err := os.ReadDir(p); err == nil && len(ents) == 0 {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	return out
}

// TestCacheDirsDoNotPileUp: each cache-put stream makes the host create
// the directory its name has, before a byte arrives. A hostile Keep that
// names a new directory for each of its files and then aborts them (or
// whose files launch later prunes) leaves those directories behind; the
// next launch must remove the empty ones, or every run adds more that
// nothing ever removes.
func TestCacheDirsDoNotPileUp(t *testing.T) {
	dir := t.TempDir()
	s, k := hostileKeep(t, dir, maxCacheBytes, channel.Handler{})
	go s.mux.Run()
	for i := range maxCacheFiles {
		st, err := k.Open(channel.Open{Role: channel.RoleCachePut, Name: fmt.Sprintf("d%03d/x", i)})
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			st.Reset("aborted") // a file that never arrives
			continue
		}
		st.Write([]byte("x")) // a file that the next launch prunes
		st.Close()
	}
	// Once the host has read it all and ended every put, the next launch.
	k.Close()
	<-s.mux.Done()
	waitOutputs(t, s)
	if len(emptyDirs(t, dir)) == 0 {
		t.Fatal("the host made no directory for the aborted files") // the test's premise
	}
	for _, f := range cacheFiles(dir, 0) { // a budget nothing fits: every file is pruned
		f.f.Close()
	}
	if c := cacheContents(t, dir); len(c) != 0 {
		t.Fatalf("launch left files past the budget: %v", c)
	}
	if e := emptyDirs(t, dir); len(e) != 0 {
		t.Fatalf("launch left %d empty directories a Keep made: %v…", len(e), e[:min(len(e), 3)])
	}
}
