// hello prints the upstream hello test's greeting.
package main

import "os"

func main() { os.Stdout.WriteString("Hello, world!\n") }
