package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The Keep may not create sockets, yet its identity step must reach the
// Steward named in Enarx.toml. A dial broker does the connect on the host:
// the Keep writes one byte on its broker socket; the host connects to the
// configured Steward (and only there — the Keep cannot name a destination)
// and passes the connected socket back with SCM_RIGHTS. TLS to the Steward
// still ends inside the Keep.

const (
	brokerOK   byte = 0
	brokerFail byte = 1
	// maxBrokerDials bounds how many connections one Keep may ask for
	// (the identity client retries a few times).
	maxBrokerDials    = 16
	brokerDialTimeout = 30 * time.Second
)

// serveBroker answers dial requests on c until it is closed.
func serveBroker(ctx context.Context, c *net.UnixConn, addr string, log *slog.Logger) {
	var b [1]byte
	for n := 0; n < maxBrokerDials; n++ {
		if _, err := c.Read(b[:]); err != nil {
			return
		}
		d := net.Dialer{Timeout: brokerDialTimeout}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			if log != nil {
				log.Warn("sandbox: connecting to the Steward for the Keep failed", "addr", addr, "err", err)
			}
			if _, err := c.Write([]byte{brokerFail}); err != nil {
				return
			}
			continue
		}
		f, err := conn.(*net.TCPConn).File()
		conn.Close()
		if err != nil {
			c.Write([]byte{brokerFail})
			continue
		}
		_, _, err = c.WriteMsgUnix([]byte{brokerOK}, unix.UnixRights(int(f.Fd())), nil)
		f.Close()
		if err != nil {
			return
		}
	}
}

// brokerDialer is the Keep side: each call asks the host for one
// connection to the Steward.
type brokerDialer struct {
	mu sync.Mutex
	c  *net.UnixConn
}

func newBrokerDialer(f *os.File) (*brokerDialer, error) {
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("sandbox Keep: dial broker: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, errors.New("sandbox Keep: dial broker is not a unix socket")
	}
	return &brokerDialer{c: uc}, nil
}

// Dial returns a connection to the Steward made by the host.
func (b *brokerDialer) Dial(ctx context.Context) (net.Conn, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if dl, ok := ctx.Deadline(); ok {
		b.c.SetDeadline(dl)
		defer b.c.SetDeadline(time.Time{})
	}
	if _, err := b.c.Write([]byte{'D'}); err != nil {
		return nil, fmt.Errorf("asking the host to connect to the Steward: %w", err)
	}
	var st [1]byte
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := b.c.ReadMsgUnix(st[:], oob)
	if err != nil || n != 1 {
		return nil, fmt.Errorf("reading the host's answer: %v", err)
	}
	fds, err := parseRights(oob[:oobn])
	if st[0] != brokerOK {
		closeAll(fds)
		return nil, errors.New("the host could not connect to the Steward")
	}
	if err != nil || len(fds) != 1 {
		closeAll(fds)
		return nil, fmt.Errorf("the host's answer carries no single socket (%v)", err)
	}
	f := os.NewFile(uintptr(fds[0]), "steward")
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("the host passed something that is not a socket: %w", err)
	}
	if _, ok := conn.(*net.TCPConn); !ok {
		conn.Close()
		return nil, errors.New("the host passed something that is not a TCP connection")
	}
	return conn, nil
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for i := range msgs {
		r, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			closeAll(fds)
			return nil, err
		}
		fds = append(fds, r...)
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
