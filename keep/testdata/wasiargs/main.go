// wasiargs prints argv and the environment, one per line.
package main

import (
	"fmt"
	"os"
)

func main() {
	for _, a := range os.Args {
		fmt.Printf("arg %s\n", a)
	}
	for _, e := range os.Environ() {
		fmt.Printf("env %s\n", e)
	}
}
