// listen checks FD_COUNT/FD_NAMES, signals readiness on fd 4 ("ping"),
// then accepts three connections on fd 3 ("ingest"): blocking, blocking,
// non-blocking (Go's poller over poll_oneoff). Each gets its line echoed.
package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"syscall"
)

func fail(f string, a ...any) {
	fmt.Fprintf(os.Stderr, f+"\n", a...)
	os.Exit(1)
}

func serve(l net.Listener) {
	c, err := l.Accept()
	if err != nil {
		fail("accept: %v", err)
	}
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		fail("read: %v", err)
	}
	if _, err := c.Write([]byte(line)); err != nil {
		fail("write: %v", err)
	}
}

func main() {
	want := os.Getenv("WANT_NAMES")
	if c, n := os.Getenv("FD_COUNT"), os.Getenv("FD_NAMES"); c != "5" || n != want {
		fail("FD_COUNT=%q FD_NAMES=%q, want 5 and %q", c, n, want)
	}
	l, err := net.FileListener(os.NewFile(3, "ingest"))
	if err != nil {
		fail("FileListener: %v", err)
	}
	ping, err := net.FileConn(os.NewFile(4, "ping"))
	if err != nil {
		fail("FileConn: %v", err)
	}
	ping.Write([]byte("ready\n"))
	serve(l)
	serve(l)
	if err := syscall.SetNonblock(3, true); err != nil {
		fail("SetNonblock: %v", err)
	}
	nl, err := net.FileListener(os.NewFile(3, "ingest"))
	if err != nil {
		fail("FileListener: %v", err)
	}
	serve(nl)
	fmt.Println("listen ok")
}
