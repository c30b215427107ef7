// Package backendtest runs a workload on a backend.Backend the way `enarx
// run` does — hostio opens the files its Enarx.toml names, with stdin,
// stdout and stderr replaced by pipes — for the tests of the backends and
// of the containerd shim, which compare backends on one workload table.
// It is test code: it trusts its caller and fails the test on set-up
// errors.
package backendtest

import (
	"bytes"
	"context"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/config"
	"github.com/enarx-go/enarx/internal/hostio"
	"github.com/enarx-go/enarx/keep"
)

// Result is what one run gave.
type Result struct {
	Code           int
	Err            string // the backend's error; "" for none
	Stdout, Stderr string
}

// Run runs w on b with stdin written to the workload's stdin and o as the
// Keep's options (o.Files is what hostio opened, stdio on pipes; a nil
// o.VolumeKeys is what hostio.VolumeKeys read). w.Config
// is parsed as the Enarx.toml ("" for none: the default stdio files).
// The run is cancelled after three minutes.
func Run(t testing.TB, b backend.Backend, w keep.Workload, stdin []byte, o keep.Options) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := config.Default()
	var err error
	if w.Config != nil {
		if cfg, err = config.Parse("Enarx.toml", w.Config); err != nil {
			t.Fatal(err)
		}
	}
	if o.VolumeKeys == nil {
		if o.VolumeKeys, err = hostio.VolumeKeys(cfg, o.Logger); err != nil {
			t.Fatal(err)
		}
	}
	files, err := hostio.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer hostio.Close(files)
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range cfg.Files {
		switch f.Kind {
		case config.KindStdin:
			files[i] = inR
		case config.KindStdout:
			files[i] = outW
		case config.KindStderr:
			files[i] = errW
		}
	}
	var wg sync.WaitGroup
	var stdout, stderr bytes.Buffer
	wg.Go(func() { inW.Write(stdin); inW.Close() })
	wg.Go(func() { io.Copy(&stdout, outR) })
	wg.Go(func() { io.Copy(&stderr, errR) })
	code, err := b.Run(ctx, &backend.Launch{Workload: w, Config: cfg, Files: files, Options: o})
	outW.Close()
	errW.Close()
	inR.Close()
	wg.Wait()
	outR.Close()
	errR.Close()
	r := Result{Code: code, Stdout: stdout.String(), Stderr: stderr.String()}
	if err != nil {
		r.Err = err.Error()
	}
	return r
}
