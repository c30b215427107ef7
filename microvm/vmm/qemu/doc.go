// Package qemu starts microVM Keeps with QEMU (qemu-system-x86_64): a typed
// argv builder (Args), a probe of the installed binary (Probe: version and
// seccomp sandbox support) and a vmm.Launcher (Launcher) that runs QEMU as
// a child process bound to the enarx process.
//
// QEMU is run without a shell, with a minimal environment, no monitor, no
// display, no default devices, no user config and no reboot, under its
// seccomp sandbox when the binary has one (a probe that gets no answer is
// an error, never "no sandbox"; a binary without one is warned about at
// every launch), in its own process group, and with SIGKILL
// as its parent-death signal, forked from a locked OS thread that is kept
// until QEMU is reaped (the signal follows the forking thread). Plain VMs,
// SEV-SNP (QEMU >= 9.1) and TDX (QEMU >= 10.1) all use the q35 machine
// (the microvm machine hangs under TCG without tsc_early_khz, and SNP and
// TDX need q35). The guest's serial console is QEMU's stdout; each virtio-serial channel is a
// socket the host passes in as an inherited descriptor
// (-chardev socket,fd=N).
//
// Trust: QEMU and this package run on the untrusted host, outside the
// Keep's trust boundary. What the guest writes to the console is untrusted
// and handed on line by line, bounded in length.
package qemu
