package cli

import (
	"bytes"
	"errors"
	"testing"
)

// TestRunOutcome: enarx run's exit status for a Keep's code and error,
// which a microVM Keep's guest sends (hostile if its workload escaped
// wasm). An error with a code no process can exit with (256) made enarx
// print the error and exit 0 (256 & 0xff): it now fails with the error.
func TestRunOutcome(t *testing.T) {
	boom := errors.New("boom")
	for _, c := range []struct {
		code     int
		err      error
		wantCode int // ExitError's, 0: none
		wantErr  bool
		stderr   string
	}{
		{0, nil, 0, false, ""},
		{7, nil, 7, true, ""},
		{256, nil, 0, true, ""},
		{-1, nil, 0, true, ""},
		{1, boom, 0, true, ""},
		{0, boom, 0, true, ""},
		{7, boom, 7, true, "Error: boom\n"},
		{256, boom, 0, true, ""},
		{-255, boom, 0, true, ""},
	} {
		var stderr bytes.Buffer
		err := runOutcome(c.code, c.err, &stderr)
		var ee *ExitError
		gotCode := 0
		if errors.As(err, &ee) {
			gotCode = ee.Code
		}
		if (err != nil) != c.wantErr || gotCode != c.wantCode || stderr.String() != c.stderr {
			t.Errorf("code %d, err %v: got %v (exit status %d), stderr %q; want an error: %v, exit status %d, stderr %q",
				c.code, c.err, err, gotCode, stderr.String(), c.wantErr, c.wantCode, c.stderr)
		}
		if c.err != nil && gotCode == 0 && !errors.Is(err, c.err) {
			t.Errorf("code %d, err %v: got %v; want the Keep's error", c.code, c.err, err)
		}
	}
}
