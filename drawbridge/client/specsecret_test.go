package client

import (
	"strings"
	"testing"
)

// TestParsePackageURLHidesPassword: a package URL with a password in it
// (`enarx deploy https://ci:TOKEN@host/…`, refused) is not repeated with
// the password in the error, which CI logs keep.
func TestParsePackageURLHidesPassword(t *testing.T) {
	for _, in := range []string{
		"https://ci:s3cret@h/api/v0.1.0/u/r/_tag/1.0.0",
		"https://ci:s3cret@h/api/v0.1.0/u/r/_tag/1.0.0/tree",
		"http://ci:s3cret@h/api/v0.1.0/u/r/_tag/1.0.0",
		"https://ci:s3cret@h/api/v0.1.0/u/r/_tag/%zz",
	} {
		_, err := ParsePackageURL(in)
		if err == nil {
			t.Fatalf("%q accepted", in)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q: error shows the password: %v", in, err)
		}
	}
}
