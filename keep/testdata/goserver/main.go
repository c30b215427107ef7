// goserver is a Go TCP server written the usual way (no SetNonblock): a
// goroutine per connection on net.FileListener(os.NewFile(3, ...)). Each
// connection gets its line echoed; a "quit" line ends the program.
package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
)

func main() {
	l, err := net.FileListener(os.NewFile(3, "ingest"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	quit := make(chan struct{})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				fmt.Fprintln(os.Stderr, "accept:", err)
				os.Exit(1)
			}
			go func() {
				defer c.Close()
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil {
					return
				}
				if line == "quit\n" {
					close(quit)
					return
				}
				c.Write([]byte(line))
			}()
		}
	}()
	<-quit
	fmt.Println("served")
}
