// Command tcp-echo is a TCP echo server on fd 3, the listen socket its
// Enarx.toml declares. It serves connections concurrently until killed.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -o tcp-echo.wasm ./examples/tcp-echo
// Run:   enarx run --wasmcfgfile examples/tcp-echo/Enarx.toml tcp-echo.wasm
// Try:   nc 127.0.0.1 10010
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
)

func main() {
	names := strings.Split(os.Getenv("FD_NAMES"), ":")
	if len(names) < 4 || names[3] != "ingest" {
		fmt.Fprintf(os.Stderr, "tcp-echo: expected fd 3 named ingest, FD_NAMES=%q\n", os.Getenv("FD_NAMES"))
		os.Exit(1)
	}
	// For Go workloads the Keep hands over sockets in non-blocking mode, so
	// Go's scheduler serves every connection's goroutine over poll_oneoff.
	l, err := net.FileListener(os.NewFile(3, "ingest"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "tcp-echo:", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "tcp-echo: listening on fd 3")
	for {
		c, err := l.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "tcp-echo: accept:", err)
			os.Exit(1)
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}
