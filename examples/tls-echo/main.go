// Command tls-echo is an echo server for a TLS listen socket: the Keep
// terminates TLS (with its Steward-issued or self-signed certificate) and
// the workload sees plaintext on fd 3, the "ingest" entry of its Enarx.toml.
// It serves connections concurrently until killed.
//
// Build: GOOS=wasip1 GOARCH=wasm go build -o tls-echo.wasm ./examples/tls-echo
// Run:   enarx run --wasmcfgfile examples/tls-echo/Enarx.toml tls-echo.wasm
// Try:   openssl s_client -connect 127.0.0.1:10443 -tls1_3 -quiet
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
)

const fd, name = 3, "ingest"

func main() {
	names := strings.Split(os.Getenv("FD_NAMES"), ":")
	if len(names) <= fd || names[fd] != name {
		fmt.Fprintf(os.Stderr, "tls-echo: expected fd %d named %s, FD_NAMES=%q\n", fd, name, os.Getenv("FD_NAMES"))
		os.Exit(1)
	}
	// Go's wasip1 runtime multiplexes goroutines over poll_oneoff only for
	// non-blocking descriptors; os.NewFile checks the flag, so set it first.
	if err := syscall.SetNonblock(fd, true); err != nil {
		fmt.Fprintln(os.Stderr, "tls-echo:", err)
		os.Exit(1)
	}
	l, err := net.FileListener(os.NewFile(fd, name))
	if err != nil {
		fmt.Fprintln(os.Stderr, "tls-echo:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "tls-echo: listening on fd %d\n", fd)
	// A client that fails the TLS handshake (for example one without an
	// acceptable certificate under client_auth) makes that accept fail;
	// keep serving, but give up if accept keeps failing.
	const maxFailures = 100
	for failures := 0; ; {
		c, err := l.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "tls-echo: accept:", err)
			if failures++; failures == maxFailures {
				os.Exit(1)
			}
			continue
		}
		failures = 0
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}
