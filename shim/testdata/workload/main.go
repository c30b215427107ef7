// Command workload is the shim tests' wasm workload. Its mode is the first
// of its arguments that names one (the Enarx.toml's args come first):
//
//	hello   print argv, the environment it was given and FD_NAMES (default)
//	exit N  exit with status N
//	sleep   sleep for an hour (until killed)
//	serve   echo lines on the listener at fd 3 until killed
//	alloc N allocate and touch N MiB, then exit 0
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"
)

func main() {
	mode, at := "hello", 0
	for i, a := range os.Args[1:] {
		if a == "hello" || a == "exit" || a == "sleep" || a == "serve" || a == "alloc" {
			mode, at = a, i+1
			break
		}
	}
	switch mode {
	case "hello":
		fmt.Printf("Hello from a Keep: args=%q GREETING=%q FROM_CONFIG=%q FD_NAMES=%q\n",
			os.Args, os.Getenv("GREETING"), os.Getenv("FROM_CONFIG"), os.Getenv("FD_NAMES"))
	case "exit":
		n := 0
		if at+1 < len(os.Args) {
			n, _ = strconv.Atoi(os.Args[at+1])
		}
		fmt.Println("exiting with", n)
		os.Exit(n)
	case "alloc":
		n := 0
		if at+1 < len(os.Args) {
			n, _ = strconv.Atoi(os.Args[at+1])
		}
		var keep [][]byte
		for i := 0; i < n; i += 16 {
			b := make([]byte, 16<<20)
			for j := range b {
				b[j] = 1
			}
			keep = append(keep, b)
			fmt.Println("allocated", i+16, "MiB")
		}
		fmt.Println("allocated all", len(keep)*16, "MiB")
	case "sleep":
		fmt.Println("sleeping")
		time.Sleep(time.Hour)
	case "serve":
		l, err := net.FileListener(os.NewFile(3, "ingest"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "workload:", err)
			os.Exit(1)
		}
		fmt.Println("serving")
		for {
			c, err := l.Accept()
			if err != nil {
				fmt.Fprintln(os.Stderr, "workload: accept:", err)
				os.Exit(1)
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}
}
