// connect checks FD_COUNT/FD_NAMES, then on fd 3 (a connected TCP stream)
// sends three lines and expects each echoed back: twice with a blocking
// descriptor, once non-blocking (through Go's poller and poll_oneoff).
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

func exchange(c net.Conn, r *bufio.Reader, i int) {
	msg := fmt.Sprintf("line %d\n", i)
	if _, err := c.Write([]byte(msg)); err != nil {
		fail("write: %v", err)
	}
	got, err := r.ReadString('\n')
	if err != nil || got != msg {
		fail("read %q, %v; want %q", got, err, msg)
	}
}

func main() {
	if c, n := os.Getenv("FD_COUNT"), os.Getenv("FD_NAMES"); c != "4" || n != "stdin:stdout:stderr:stream" {
		fail("FD_COUNT=%q FD_NAMES=%q", c, n)
	}
	c, err := net.FileConn(os.NewFile(3, "stream"))
	if err != nil {
		fail("FileConn: %v", err)
	}
	r := bufio.NewReader(c)
	exchange(c, r, 0)
	exchange(c, r, 1)
	if err := syscall.SetNonblock(3, true); err != nil {
		fail("SetNonblock: %v", err)
	}
	nc, err := net.FileConn(os.NewFile(3, "stream"))
	if err != nil {
		fail("FileConn: %v", err)
	}
	exchange(nc, bufio.NewReader(nc), 2)
	fmt.Println("connect ok")
}
