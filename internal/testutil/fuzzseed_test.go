package testutil

import (
	"crypto"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"go/ast"
	"go/parser"
	"go/token"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestCorpusFile(t *testing.T) {
	for _, c := range []struct {
		vals []any
		want string
	}{
		{[]any{[]byte("a\x00\"\xff")}, `[]byte("a\x00\"\xff")`},
		{[]any{"é\n", []byte{}}, "string(\"é\\n\")\n[]byte(\"\")"},
		{[]any{int(-5), int8(1), int16(2), int64(3), uint(4), uint16(5), uint32(6), uint64(7), true}, "int(-5)\nint8(1)\nint16(2)\nint64(3)\nuint(4)\nuint16(5)\nuint32(6)\nuint64(7)\nbool(true)"},
		{[]any{byte('x'), rune('é'), int32(-1)}, "byte('x')\nrune('é')\nint32(-1)"},
		{[]any{float32(1.5), math.Inf(-1), math.NaN(), math.Float64frombits(0x7ff8000000000002)}, "float32(1.5)\nfloat64(-Inf)\nfloat64(NaN)\nmath.Float64frombits(0x7ff8000000000002)"},
	} {
		if got, want := string(CorpusFile(c.vals...)), "go test fuzz v1\n"+c.want+"\n"; got != want {
			t.Errorf("CorpusFile(%#v) = %q, want %q", c.vals, got, want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("an unsupported type did not panic")
		}
	}()
	CorpusFile(struct{}{})
}

// TestCorpusFileParses: every line after the header is a Go conversion
// whose quoted literal unquotes to the value, as the go command reads it.
func TestCorpusFileParses(t *testing.T) {
	vals := []any{"\u202e\t\xc3", []byte{0, 0x80, '\\', '"', 0xff}}
	lines := strings.Split(strings.TrimSuffix(string(CorpusFile(vals...)), "\n"), "\n")
	if lines[0] != "go test fuzz v1" || len(lines) != 1+len(vals) {
		t.Fatalf("lines %q", lines)
	}
	for i, l := range lines[1:] {
		e, err := parser.ParseExprFrom(token.NewFileSet(), "", l, 0)
		if err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		lit, ok := e.(*ast.CallExpr).Args[0].(*ast.BasicLit)
		if !ok {
			t.Fatalf("%q: not a literal", l)
		}
		s, err := strconv.Unquote(lit.Value)
		if err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		if want := vals[i]; s != string(toBytes(want)) {
			t.Errorf("%q reads %q, want %q", l, s, want)
		}
	}
}

func toBytes(v any) []byte {
	if s, ok := v.(string); ok {
		return []byte(s)
	}
	return v.([]byte)
}

func TestCheckSeedCorpusArgs(t *testing.T) {
	t.Chdir(t.TempDir())
	seeds := [][]any{{"u", []byte("b")}, {"", []byte{}}}
	t.Setenv("UPDATE_FUZZ_SEEDS", "1")
	CheckSeedCorpusArgs(t, "FuzzX", seeds)
	got, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzX", "seed-1"))
	if err != nil || string(got) != "go test fuzz v1\nstring(\"\")\n[]byte(\"\")\n" {
		t.Fatalf("wrote %q (%v)", got, err)
	}
	t.Setenv("UPDATE_FUZZ_SEEDS", "")
	if failed(func(t testing.TB) { CheckSeedCorpusArgs(t, "FuzzX", seeds) }) {
		t.Error("the corpus just written does not check")
	}
	// CheckSeedCorpus writes the same files for one []byte.
	t.Setenv("UPDATE_FUZZ_SEEDS", "1")
	CheckSeedCorpus(t, "FuzzY", [][]byte{[]byte("z")})
	t.Setenv("UPDATE_FUZZ_SEEDS", "")
	if failed(func(t testing.TB) { CheckSeedCorpusArgs(t, "FuzzY", [][]any{{[]byte("z")}}) }) {
		t.Error("CheckSeedCorpus and CheckSeedCorpusArgs disagree on a []byte seed")
	}
	if failed(func(t testing.TB) { CheckStringSeedCorpus(t, "FuzzX", []string{"u"}) }) == false {
		t.Error("a string seed checks against a (string, []byte) file")
	}
	t.Setenv("UPDATE_FUZZ_SEEDS", "1")
	CheckSeedCorpusArgs(t, "FuzzS", [][]any{{"s"}, {""}})
	t.Setenv("UPDATE_FUZZ_SEEDS", "")
	if failed(func(t testing.TB) { CheckStringSeedCorpus(t, "FuzzS", []string{"s", ""}) }) {
		t.Error("CheckStringSeedCorpus and CheckSeedCorpusArgs disagree on string seeds")
	}
	for name, s := range map[string][][]any{
		"stale":   {{"u", []byte("c")}, seeds[1]},
		"missing": {seeds[0], seeds[1], {"new", []byte{}}},
	} {
		if !failed(func(t testing.TB) { CheckSeedCorpusArgs(t, "FuzzX", s) }) {
			t.Errorf("%s corpus checks", name)
		}
	}
}

// failed runs f with a testing.TB that records errors instead of failing t.
func failed(f func(testing.TB)) bool {
	r := &recorder{}
	f(r)
	return r.failed
}

type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Name() string          { return "TestRecorder" }
func (r *recorder) Errorf(string, ...any) { r.failed = true }
func (r *recorder) Fatal(...any)          { r.failed = true }
func (r *recorder) Fatalf(string, ...any) { r.failed = true }

func TestFixedECDSAKey(t *testing.T) {
	sign := func() []byte {
		k := FixedECDSAKey(t, elliptic.P256(), "test")
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fixed"},
			NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<31, 0),
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	if a, b := sign(), sign(); string(a) != string(b) {
		t.Fatal("the same key and template signed two certificates")
	}
	if FixedECDSAKey(t, elliptic.P384(), "a").Equal(FixedECDSAKey(t, elliptic.P384(), "b").PrivateKey) {
		t.Fatal("two labels, one key")
	}
	h := sha256.Sum256([]byte("m"))
	k := FixedECDSAKey(t, elliptic.P256(), "test")
	s1, _ := k.Sign(rand.Reader, h[:], crypto.SHA256)
	s2, _ := k.Sign(rand.Reader, h[:], crypto.SHA256)
	if string(s1) != string(s2) {
		t.Fatal("signatures are randomized")
	}
}
