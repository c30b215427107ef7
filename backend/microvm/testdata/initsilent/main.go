// initsilent is a Keep /init that never opens its channel: the host must
// give up after its boot timeout.
package main

import "time"

func main() {
	for {
		time.Sleep(time.Hour)
	}
}
