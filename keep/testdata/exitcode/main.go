// exitcode exits with the status given as its first argument, after
// writing a line to stderr; "panic" panics instead.
package main

import (
	"fmt"
	"os"
	"strconv"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "panic" {
		panic("as requested")
	}
	n := 0
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	fmt.Fprintf(os.Stderr, "exiting with %d\n", n)
	os.Exit(n)
}
