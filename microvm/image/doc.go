// Package image builds and finds the Keep image: the guest kernel, the initramfs
// (initrd.cpio) whose /init is the static Go Keep, and a manifest.json that
// records the kernel command line and the SHA-256 of both files.
//
// The image is measured: on SEV-SNP the kernel, the initrd and the command line
// are hashed into the launch digest, so the initrd is built byte-reproducibly
// (a newc cpio archive with fixed times, owners and inode numbers, entries in
// sorted order) and the init binary with pinned Go build flags. The workload is
// not part of the image; it travels to the Keep after boot, so one measurement
// serves every workload.
//
// What it trusts: the host files it is pointed at (kernel, kernel modules, the
// init binary) are the host's own and are read as given, but every parser here
// (cpio, ELF .modinfo, bzImage header) bounds its input and returns an error
// instead of panicking. Load re-checks both SHA-256s against the manifest so a
// changed file on disk is reported before it is booted; that check protects
// against mistakes, not against the host, which the Keep never trusts: the
// attestation measurement is what binds the image.
//
// Kernel modules compressed with gzip are read with the standard library;
// xz and zstd ones only once the program registers the decompressors of
// package microvm/image/kmodcomp (enarx-keep-image does). enarx itself only
// finds and loads images, and links neither.
//
// Layout of an image directory:
//
//	vmlinuz        the kernel (a copy of the bzImage it was built with)
//	initrd.cpio    uncompressed newc archive: /init, /dev/console, /dev, /proc,
//	               /sys, /tmp, /modules/* and /modules/order
//	manifest.json  Manifest
package image
