// Package shim is containerd-shim-enarx-v1: a containerd runtime v2 shim
// (runtime type io.containerd.enarx.v1) that runs an OCI image's wasm
// module in a Keep, so that containerd, and Kubernetes through a
// RuntimeClass, schedule Keeps as containers.
//
// It is built on containerd's own shim library, runtime/v2/shim of the
// containerd 1.7 module: its start-up answer (the socket address) and task
// v2 ttrpc API are what containerd 1.6 (Debian 12's) and 1.7 daemons speak,
// and 2.x daemons still accept. The 2.x library does not work with 1.6:
// tried against containerd 1.6.20 with a probe shim, 2.2's answers start
// with a JSON bootstrap record, which 1.6 dials as an address, and 2.4's
// refuses to start without the bootstrap input containerd 2.3 introduced. An image is the shape `docker buildx build --platform
// wasi/wasm` produces: its entrypoint (the OCI spec's args[0]) names the
// module in the image root, and an optional /Enarx.toml is the workload's
// config. The spec's remaining args and its env reach the workload.
//
// A container may instead name a Drawbridge package in its env
// (ENARX_PACKAGE=HOST/USER/REPO:TAG[@sha-256:DIGEST], see PackageEnv): the
// image's root is then not read; the shim fetches the package's bundle at
// create, as `enarx deploy` does, with the CA bundle and token file of its
// runtime options (PackageOptions), and the Keep verifies the bundle before
// it runs (loadPackage).
//
// Processes: containerd runs the shim binary with "start", which starts
// the long-lived shim (Manager.Start) that serves the task API (service).
// Each task's Keep is launched by a process of its own, the keep host: the
// shim binary re-executed with a hidden argument (IsKeepHost, KeepHostMain),
// started inside the network namespace the OCI spec names, so that the
// Keep's listen sockets bind there. It reads its launch message from fd 3
// and the image's module from fd 4 (opened and checked by the shim, read
// here, in the task's cgroup, so that it counts against the pod's limit),
// then selects the backend, opens the host resources Enarx.toml names and
// runs the Keep exactly as `enarx run` does (backend, internal/hostio). Its
// stdio are pipes the shim copies from and to containerd's FIFOs, its exit
// status is the container's, and a signal sent to the task kills it (a wasm
// workload cannot catch signals), which ends the Keep with it: a Keep in the
// keep host (nil backend) dies with the process, a sandbox Keep by its
// parent-death signal.
//
// The keep host runs in the cgroup the spec names, with the spec's cgroup
// limits (not its device rules, which a Keep's backend cannot live with),
// its OOM score adjustment (the kubelet's, by QoS class, not the shim's)
// and its process.rlimits, and Stats reports that cgroup. A Kubernetes
// pod's sandbox container runs the shim's own pause (a keep host that only
// waits for a signal) in the pod's network namespace, since the pause
// image is no wasm.
//
// Trust: the shim runs on the untrusted host, as enarx run does. It treats
// the image as untrusted input: the module and Enarx.toml are opened inside
// the image's root with openat2(RESOLVE_IN_ROOT), as regular files only (a
// device node an image layer carries is never opened), size-limited, and checked
// (wasm magic, config.Parse) before any Keep starts; the Keep re-checks
// everything it is given. The host paths an Enarx.toml names (host and
// sealed directories, volume key files) are the node operator's to grant:
// the keep host opens only those the runtime options' allow_host_paths
// name (Options.AllowHostPaths). Likewise the registry a package names is
// the pod's choice: the shim fetches only from the runtime options'
// drawbridge_hosts when they are set, and sends the node's Drawbridge token
// only to them (PackageOptions.DrawbridgeHosts).
package shim
