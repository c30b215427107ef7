// tlslisten accepts one connection on fd 3 (a TLS listener: the Keep
// terminates TLS, the guest sees plaintext), non-blocking through Go's
// poller, and echoes lines until the peer closes.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
)

func main() {
	if err := syscall.SetNonblock(3, true); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	l, err := net.FileListener(os.NewFile(3, "ingest"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	c, err := l.Accept()
	if err != nil {
		fmt.Fprintln(os.Stderr, "accept:", err)
		os.Exit(1)
	}
	n, err := io.Copy(c, c)
	fmt.Printf("echoed %d bytes, %v\n", n, err)
}
