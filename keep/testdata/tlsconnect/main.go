// tlsconnect writes a request on fd 3 (a TLS stream; the Keep did the
// handshake) and prints the reply until the server closes.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
)

func main() {
	syscall.SetNonblock(3, true)
	c, err := net.FileConn(os.NewFile(3, "stream"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	c.Write([]byte("hello over tls\n"))
	b, err := io.ReadAll(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "read:", err)
		os.Exit(1)
	}
	os.Stdout.Write(b)
}
