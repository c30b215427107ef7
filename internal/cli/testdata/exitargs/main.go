// exitargs prints its arguments and FD_NAMES, reads stdin to the end and
// exits with the status given by the last argument (if numeric).
package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

func main() {
	in, _ := io.ReadAll(os.Stdin)
	fmt.Printf("args=%s names=%s stdin=%q\n", strings.Join(os.Args, ","), os.Getenv("FD_NAMES"), in)
	if n, err := strconv.Atoi(os.Args[len(os.Args)-1]); err == nil {
		os.Exit(n)
	}
}
