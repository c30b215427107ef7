// sha hashes N MiB (argument, default 256) of bytes generated in memory
// and prints the SHA-256.
package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"strconv"
)

func main() {
	n := 256
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	buf := make([]byte, 1<<20)
	h := sha256.New()
	for i := 0; i < n; i++ {
		for j := range buf {
			buf[j] = byte(i + j)
		}
		h.Write(buf)
	}
	fmt.Printf("%x\n", h.Sum(nil))
}
