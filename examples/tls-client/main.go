// Command tls-client sends its arguments over fd 3, the "backend" connect
// entry of its Enarx.toml, reads back as many bytes and prints them. The
// Keep makes the connection a TLS 1.3 one and verifies the server's
// certificate (against the entry's inline ca, or the Mozilla roots) before
// the workload starts; the workload sees plaintext.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -o tls-client.wasm ./examples/tls-client
// Run:   enarx run --wasmcfgfile examples/tls-client/Enarx.toml tls-client.wasm -- hello
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
)

const fd, name = 3, "backend"

func main() {
	names := strings.Split(os.Getenv("FD_NAMES"), ":")
	if len(names) <= fd || names[fd] != name {
		fmt.Fprintf(os.Stderr, "tls-client: expected fd %d named %s, FD_NAMES=%q\n", fd, name, os.Getenv("FD_NAMES"))
		os.Exit(1)
	}
	// Go's wasip1 runtime multiplexes goroutines over poll_oneoff only for
	// non-blocking descriptors; os.NewFile checks the flag, so set it first.
	if err := syscall.SetNonblock(fd, true); err != nil {
		fmt.Fprintln(os.Stderr, "tls-client:", err)
		os.Exit(1)
	}
	c, err := net.FileConn(os.NewFile(fd, name))
	if err != nil {
		fmt.Fprintln(os.Stderr, "tls-client:", err)
		os.Exit(1)
	}
	defer c.Close()
	msg := []byte(strings.Join(os.Args[1:], " "))
	if _, err := c.Write(msg); err != nil {
		fmt.Fprintln(os.Stderr, "tls-client: write:", err)
		os.Exit(1)
	}
	reply := make([]byte, len(msg))
	if _, err := io.ReadFull(c, reply); err != nil {
		fmt.Fprintln(os.Stderr, "tls-client: read:", err)
		os.Exit(1)
	}
	fmt.Printf("%s\n", reply)
}
