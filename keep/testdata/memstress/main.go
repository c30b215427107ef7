// memstress allocates 1 B .. 32 MiB doubling, twice, then 100 x 32 MiB
// (upstream's memory_stress_test); with an argument N it instead keeps N
// MiB blocks alive until the memory limit stops it.
package main

import (
	"fmt"
	"os"
	"strconv"
)

var sink [][]byte

func touch(b []byte) {
	for i := 0; i < len(b); i += 4096 {
		b[i] = byte(i)
	}
}

func main() {
	if len(os.Args) > 1 {
		n, _ := strconv.Atoi(os.Args[1])
		for i := 0; ; i++ {
			b := make([]byte, n<<20)
			touch(b)
			sink = append(sink, b)
			fmt.Fprintf(os.Stderr, "holding %d MiB\n", (i+1)*n)
		}
	}
	for round := 0; round < 2; round++ {
		for size := 1; size <= 32<<20; size *= 2 {
			b := make([]byte, size)
			touch(b)
		}
	}
	for i := 0; i < 100; i++ {
		b := make([]byte, 32<<20)
		touch(b)
	}
	fmt.Println("ok")
}
