package fd

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// tls13Writer writes TLS 1.3 records as the client whose key log it is
// given, from its first application record on: crypto/tls cannot send a
// KeyUpdate, so the test peer makes its records itself.
type tls13Writer struct {
	t      *testing.T
	hash   crypto.Hash
	keyLen int
	chacha bool
	secret []byte
	aead   cipher.AEAD
	iv     []byte
	seq    uint64
}

// expandLabel is HKDF-Expand-Label (RFC 8446, section 7.1) with an empty
// context.
func expandLabel(t *testing.T, h crypto.Hash, secret []byte, label string, n int) []byte {
	label = "tls13 " + label
	info := []byte{byte(n >> 8), byte(n), byte(len(label))}
	info = append(append(info, label...), 0)
	out, err := hkdf.Expand(h.New, secret, string(info), n)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func newTLS13Writer(t *testing.T, suite uint16, keyLog string) *tls13Writer {
	t.Helper()
	w := &tls13Writer{t: t}
	switch suite {
	case tls.TLS_AES_128_GCM_SHA256:
		w.hash, w.keyLen = crypto.SHA256, 16
	case tls.TLS_AES_256_GCM_SHA384:
		w.hash, w.keyLen = crypto.SHA384, 32
	case tls.TLS_CHACHA20_POLY1305_SHA256:
		w.hash, w.keyLen, w.chacha = crypto.SHA256, 32, true
	default:
		t.Fatalf("cipher suite %#x", suite)
	}
	for _, line := range strings.Split(keyLog, "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "CLIENT_TRAFFIC_SECRET_0" {
			s, err := hex.DecodeString(f[2])
			if err != nil {
				t.Fatal(err)
			}
			w.setSecret(s)
			return w
		}
	}
	t.Fatalf("no CLIENT_TRAFFIC_SECRET_0 in the key log:\n%s", keyLog)
	return nil
}

func (w *tls13Writer) setSecret(s []byte) {
	w.secret, w.seq = s, 0
	key := expandLabel(w.t, w.hash, s, "key", w.keyLen)
	w.iv = expandLabel(w.t, w.hash, s, "iv", 12)
	var err error
	if w.chacha {
		w.aead, err = chacha20poly1305.New(key)
	} else {
		var b cipher.Block
		if b, err = aes.NewCipher(key); err == nil {
			w.aead, err = cipher.NewGCM(b)
		}
	}
	if err != nil {
		w.t.Fatal(err)
	}
}

// record returns one protected record of content type typ.
func (w *tls13Writer) record(typ byte, content []byte) []byte {
	inner := append(append([]byte(nil), content...), typ)
	hdr := []byte{23, 3, 3, 0, 0}
	binary.BigEndian.PutUint16(hdr[3:], uint16(len(inner)+w.aead.Overhead()))
	nonce := bytes.Clone(w.iv)
	for i := 0; i < 8; i++ {
		nonce[4+i] ^= byte(w.seq >> (56 - 8*i))
	}
	w.seq++
	return w.aead.Seal(hdr, nonce, inner, hdr)
}

// keyUpdate returns a KeyUpdate record asking the peer to update too, and
// moves to the next traffic secret.
func (w *tls13Writer) keyUpdate() []byte {
	r := w.record(22, []byte{24, 0, 0, 1, 1}) // key_update, update_requested
	w.setSecret(expandLabel(w.t, w.hash, w.secret, "traffic upd", w.hash.Size()))
	return r
}

// TestTLSKeyUpdateAfterShutdownWrite: after sock_shutdown(SHUT_WR) a
// guest still reads what the peer sends (a request sent, then the reply
// read). A peer may ask for a KeyUpdate in between (RFC 8446, 4.6.3;
// Java's TLS does at its key limits): the Keep, having sent close_notify,
// must not answer, but it must move to the peer's next key. crypto/tls
// moves only once its answer is written; the send queue failed that write
// (EPIPE), so every later record failed to decrypt and the guest lost the
// rest of the stream (EIO).
func TestTLSKeyUpdateAfterShutdownWrite(t *testing.T) {
	cert := selfSigned(t)
	a, b := memPipe()
	var keyLog bytes.Buffer
	cc := tls.Client(b, &tls.Config{InsecureSkipVerify: true, KeyLogWriter: &keyLog})
	s := handshaken(t, cc, func() (*TLSSocket, error) {
		return NewConnTLSServer(context.Background(), a, &tls.Config{Certificates: []tls.Certificate{cert}})
	})
	t.Cleanup(func() { s.Close() })
	if err := s.Shutdown(ShutWrite); err != nil {
		t.Fatal(err)
	}
	sent := func() int { b.mu.Lock(); defer b.mu.Unlock(); return len(b.in) }
	before := sent()
	// The peer's own records from here on: its first application record
	// asks for a KeyUpdate, the next is data under its new key.
	w := newTLS13Writer(t, cc.ConnectionState().CipherSuite, keyLog.String())
	up := w.keyUpdate()
	if _, err := b.Write(append(up, w.record(23, []byte("the reply"))...)); err != nil {
		t.Fatal(err)
	}
	var n int
	var err error
	buf := make([]byte, 64)
	within(t, "reading the reply", func() { n, err = s.Read(buf, false) })
	if err != nil || string(buf[:n]) != "the reply" {
		t.Fatalf("read after the peer's KeyUpdate: %q, %v; want %q", buf[:n], err, "the reply")
	}
	// Nothing went out after close_notify (no KeyUpdate answer), and
	// writing still fails.
	if after := sent(); after != before {
		t.Errorf("the Keep sent %d bytes after its close_notify", after-before)
	}
	if _, err := s.Write([]byte("x"), true); err == nil {
		t.Fatal("a write after shutdown(SHUT_WR) succeeded")
	}
}
