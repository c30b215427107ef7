package microvm

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enarx-go/enarx/backend/microvm/internal/channel"
)

// TestListenersAtOnce: the host relays each listen entry's connections on
// its own goroutine, each connection on a new stream. Connections that
// arrive at once on several listen entries reach the Keep, whose channel
// goes on: the host used to send two streams' Open frames in either order,
// and the Keep took an identifier below one it had seen for a reopened
// stream, a protocol violation that stopped it. Any client of a Keep with
// two listen entries could stop it so. (The race is the scheduler's to
// lose: each round loses it only sometimes on the old code, so there are
// several; channel.TestConcurrentOpens loses it every time.)
func TestListenersAtOnce(t *testing.T) {
	for round := range 10 {
		listenersAtOnce(t, round)
	}
}

func listenersAtOnce(t *testing.T, round int) {
	const listeners, perListener = 4, 100
	var accepted atomic.Int32
	s, k := hostileKeep(t, "", 0, channel.Handler{Open: func(*channel.Stream, channel.Open) error {
		accepted.Add(1)
		return nil
	}})
	go s.mux.Run()
	var addrs []string
	for fd := 3; fd < 3+listeners; fd++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, ln.Addr().String())
		s.others.Add(1)
		go func() { defer s.others.Done(); s.serveListener(ln, fd) }()
	}
	var mu sync.Mutex
	var clients []net.Conn
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range clients {
			c.Close()
		}
	}()
	var wg sync.WaitGroup
	for _, addr := range addrs {
		for range perListener {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				clients = append(clients, c)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	want := int32(len(addrs) * perListener)
	deadline := time.After(30 * time.Second) // a safety net
	for accepted.Load() < want {
		select {
		case <-k.Done():
			t.Fatalf("round %d: the Keep's channel ended after %d of %d connections: %v", round, accepted.Load(), want, k.Err())
		case <-deadline:
			t.Fatalf("round %d: %d of %d connections reached the Keep", round, accepted.Load(), want)
		case <-time.After(time.Millisecond):
		}
	}
}
