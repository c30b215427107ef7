package testutil

import (
	"bufio"
	"fmt"
	"net"
	"testing"
)

// ListenPeer is the host side of the listen workload (keep/testdata/listen)
// that every backend's tests run: a listener the workload's "ping" connect
// file reaches, a free port for its "ingest" listen file, and the
// Enarx.toml naming both. The peer waits for the workload's "ready" on
// ping, then opens three connections to ingest and requires each to echo
// one line.
type ListenPeer struct {
	// Config is the workload's Enarx.toml.
	Config string
	done   chan error
}

// NewListenPeer starts the peer; the listener closes when the test ends.
func NewListenPeer(t testing.TB) *ListenPeer {
	t.Helper()
	ping, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ping.Close() })
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := probe.Addr().(*net.TCPAddr).Port
	probe.Close()
	p := &ListenPeer{
		Config: fmt.Sprintf("[env]\nWANT_NAMES = \"stdin:stdout:stderr:ingest:ping\"\n"+
			"[[files]]\nkind = \"stdin\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \"stderr\"\n"+
			"[[files]]\nname = \"ingest\"\nkind = \"listen\"\nprot = \"tcp\"\naddr = \"127.0.0.1\"\nport = %d\n"+
			"[[files]]\nname = \"ping\"\nkind = \"connect\"\nprot = \"tcp\"\nhost = \"127.0.0.1\"\nport = %d\n",
			port, ping.Addr().(*net.TCPAddr).Port),
		done: make(chan error, 1),
	}
	go func() { p.done <- drive(ping, port) }()
	return p
}

// Wait returns the peer's verdict once the workload has run.
func (p *ListenPeer) Wait() error { return <-p.done }

func drive(ping net.Listener, port int) error {
	pc, err := ping.Accept()
	if err != nil {
		return err
	}
	defer pc.Close()
	if line, err := bufio.NewReader(pc).ReadString('\n'); err != nil || line != "ready\n" {
		return fmt.Errorf("ping: %q %v", line, err)
	}
	for i := range 3 {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return err
		}
		msg := fmt.Sprintf("connection %d\n", i)
		c.Write([]byte(msg))
		got, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err != nil || got != msg {
			return fmt.Errorf("connection %d: got %q, %v", i, got, err)
		}
	}
	return nil
}
