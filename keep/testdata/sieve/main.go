// sieve counts the primes below N (argument, default 50,000,000).
package main

import (
	"fmt"
	"os"
	"strconv"
)

func main() {
	n := 50_000_000
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	composite := make([]bool, n)
	count := 0
	for i := 2; i < n; i++ {
		if composite[i] {
			continue
		}
		count++
		for j := i * i; j < n; j += i {
			composite[j] = true
		}
	}
	fmt.Println(count)
}
