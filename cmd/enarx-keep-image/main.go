// Command enarx-keep-image builds the Keep image for microVM Keeps
// (enarx run --backend kvm|sev): it builds cmd/enarx-keep-init with pinned
// flags, packs it with the kernel modules into a reproducible initrd and
// writes vmlinuz, initrd.cpio and manifest.json into the output directory.
// See package microvm/image and docs/microvm-kernel.md.
//
//	go run ./cmd/enarx-keep-image -o bin/keep                 # Debian 6.12 cloud kernel + modules
//	go run ./cmd/enarx-keep-image -kernel bzImage -o DIR      # a module-free kernel
//
// It trusts its flags and the files they name.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/enarx-go/enarx/microvm/image"
	"github.com/enarx-go/enarx/microvm/image/kmodcomp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err == flag.ErrHelp {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "enarx-keep-image:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("enarx-keep-image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kernel := fs.String("kernel", "", "guest kernel bzImage (default: the newest /boot/vmlinuz-6.12.*-cloud-amd64)")
	modules := fs.String("modules", "", "kernel modules directory, /lib/modules/<release> (default: the default kernel's; none with -kernel)")
	names := fs.String("module-names", strings.Join(image.DefaultModules, ","), "modules to load, comma-separated; their dependencies are added")
	cmdline := fs.String("cmdline", image.DefaultCmdline, "kernel command line (measured with the kernel and initrd on sev and tdx-vm; kvm Keeps have no measurement: their host can change anything)")
	initPath := fs.String("init", "", "use this static init binary instead of building "+image.InitPackage)
	out := fs.String("o", "bin/keep", "output directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q (see -h)", fs.Args())
	}

	spec := image.Spec{Kernel: *kernel, Cmdline: *cmdline}
	modDir := *modules
	if spec.Kernel == "" {
		k, err := image.DefaultKernel()
		if err != nil {
			return err
		}
		spec.Kernel = k.Path
		if modDir == "" {
			modDir = k.ModulesDir
		}
	}
	if modDir != "" {
		release, err := image.KernelRelease(spec.Kernel)
		if err != nil {
			return err
		}
		var list []string
		for _, n := range strings.Split(*names, ",") {
			if n = strings.TrimSpace(n); n != "" {
				list = append(list, n)
			}
		}
		// Debian's modules are xz-compressed, others' zstd.
		kmodcomp.Register(image.RegisterDecompressor)
		if spec.Modules, err = image.ResolveModules(modDir, release, list); err != nil {
			return err
		}
	}

	spec.Init = *initPath
	if spec.Init == "" {
		tmp, err := os.MkdirTemp("", "enarx-keep-init-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		spec.Init = filepath.Join(tmp, "init")
		fmt.Fprintf(stdout, "building %s (%s)\n", image.InitPackage, strings.Join(image.InitBuildCommand(), " "))
		if err := image.BuildInit(ctx, spec.Init); err != nil {
			return fmt.Errorf("%w\n(run enarx-keep-image from the enarx source tree, or pass -init)", err)
		}
		spec.InitBuild = image.InitBuildCommand()
	}

	img, err := image.Build(*out, spec)
	if err != nil {
		return err
	}
	m := img.Manifest
	fmt.Fprintf(stdout, "Keep image in %s\n", img.Dir)
	fmt.Fprintf(stdout, "  kernel   %s (release %s, from %s)\n", img.KernelPath, m.KernelRelease, spec.Kernel)
	fmt.Fprintf(stdout, "  init     %d bytes, %s\n", m.Init.Size, orNone(m.Init.GoVersion))
	var order []string
	for _, mod := range m.Modules {
		order = append(order, mod.File)
	}
	fmt.Fprintf(stdout, "  modules  %s\n", orNone(strings.Join(order, " → ")))
	fmt.Fprintf(stdout, "  cmdline  %s\n", m.Cmdline)
	fmt.Fprintf(stdout, "  sha256   %s  %s\n", m.KernelSHA256, m.Kernel)
	fmt.Fprintf(stdout, "  sha256   %s  %s\n", m.InitrdSHA256, m.Initrd)
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
