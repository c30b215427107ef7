// Package microvm provides the host-launched microVM backends: "kvm" boots
// the Keep image (a Linux kernel and an initramfs whose /init is the Keep,
// see backend/microvm/guest) in a QEMU virtual machine, and "sev" boots the same
// image as an AMD SEV-SNP confidential VM whose launch the firmware
// measures. The host talks to the Keep over one virtio-serial port with the
// channel protocol (backend/microvm/internal/channel): it sends the workload and relays the
// Keep's stdio and sockets; TLS ends inside the Keep.
//
// This package runs on the untrusted host. It trusts the host (it is the
// host), and treats the VM as hostile: the Keep's logs and exit status are
// bounded, and the Keep can make the host connect only to the Steward
// named in its config.
package microvm
