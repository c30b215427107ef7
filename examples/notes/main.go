// notes keeps a notebook in the directory preopened at /data: each
// argument is appended to /data/notes.txt as a line (then fsync'ed), and
// the whole notebook is printed. Run it with a memory, host or sealed
// directory (docs/storage.md) to see what each keeps across runs and what
// the host sees of it.
package main

import (
	"fmt"
	"os"
	"strings"
)

const path = "/data/notes.txt"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "notes:", err)
		os.Exit(1)
	}
}

func run(add []string) error {
	if len(add) > 0 {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		if _, err := f.WriteString(strings.Join(add, " ") + "\n"); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		fmt.Println("(no notes yet)")
		return nil
	}
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	for i, l := range lines {
		fmt.Printf("%d. %s\n", i+1, l)
	}
	return nil
}
