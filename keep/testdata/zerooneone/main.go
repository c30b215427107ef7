// zerooneone is a ROT13 filter from stdin to stdout.
package main

import (
	"bufio"
	"io"
	"os"
)

func rot13(b byte) byte {
	switch {
	case b >= 'a' && b <= 'z':
		return 'a' + (b-'a'+13)%26
	case b >= 'A' && b <= 'Z':
		return 'A' + (b-'A'+13)%26
	}
	return b
}

func main() {
	r := bufio.NewReader(os.Stdin)
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	for {
		b, err := r.ReadByte()
		if err == io.EOF {
			return
		}
		if err != nil {
			os.Exit(1)
		}
		w.WriteByte(rot13(b))
	}
}
