package shim_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestCRI drives containerd's CRI plugin as the kubelet does, with the
// containerd runtimes of deploy/containerd/enarx.toml and the options of
// deploy/shim: a pod on the RuntimeClass handler enarx-sandbox (host
// network: no CNI here), its sandbox (the image CRI is configured to use
// as the pause image is the wasm one, which the shim does not run), and
// Keeps whose output lands in the container's CRI log file (what kubectl
// logs reads) and whose exit codes are the containers', statistics, and
// the kubelet's stop.
func TestCRI(t *testing.T) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("the CRI image is labelled for the node's platform; linux/amd64 and arm64 only")
	}
	snippet, err := os.ReadFile("../deploy/containerd/enarx.toml")
	if err != nil {
		t.Fatal(err)
	}
	optsDir := t.TempDir()
	shimOpts, _ := filepath.Glob("../deploy/shim/*.toml")
	cache := filepath.Join(os.TempDir(), "enarx-shim-test-cache")
	for _, f := range shimOpts {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, []byte("cache_dir = \""+cache+"\"\n")...)
		if err := os.WriteFile(filepath.Join(optsDir, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runtimes := strings.ReplaceAll(strings.Replace(string(snippet), "version = 2\n", "", 1), "/etc/enarx/shim/", optsDir+"/")
	wasm := workloadWasm(t)
	image := "docker.io/enarx/shim-cri-test:" + sum(wasm)
	d := startContainerdWith(t, `
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "`+image+`"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "`+filepath.Join(optsDir, "cni-bin")+`"
    conf_dir = "`+filepath.Join(optsDir, "cni-conf")+`"
`+runtimes)
	d.namespace = "k8s.io"
	tarPath := filepath.Join(d.dir, "cri-image.tar")
	writeImage(t, tarPath, image, ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}, map[string][]byte{"main.wasm": wasm})
	d.mustCtr(t, "image", "import", tarPath)
	// CRI reads the image store when it starts.
	d.terminate()
	d.launch()

	conn, err := grpc.NewClient("unix://"+d.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rs := cri.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	logs := t.TempDir()
	podCfg := &cri.PodSandboxConfig{
		Metadata:     &cri.PodSandboxMetadata{Name: "keeps", Uid: "uid-keeps", Namespace: "default"},
		LogDirectory: logs,
		Linux: &cri.LinuxPodSandboxConfig{SecurityContext: &cri.LinuxSandboxSecurityContext{
			NamespaceOptions: &cri.NamespaceOption{Network: cri.NamespaceMode_NODE},
		}},
	}
	pod, err := rs.RunPodSandbox(ctx, &cri.RunPodSandboxRequest{Config: podCfg, RuntimeHandler: "enarx-sandbox"})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v\ncontainerd log:\n%s", err, d.log())
	}
	for _, tc := range []struct {
		name string
		args []string
		code int32
		log  string
	}{
		{"hello", []string{"hello", "from CRI"}, 0, `Hello from a Keep: args=["main.wasm" "hello" "from CRI"] GREETING="from the pod spec"`},
		{"exit", []string{"exit", "3"}, 3, "exiting with 3"},
	} {
		c, err := rs.CreateContainer(ctx, &cri.CreateContainerRequest{
			PodSandboxId: pod.PodSandboxId,
			Config: &cri.ContainerConfig{
				Metadata: &cri.ContainerMetadata{Name: tc.name},
				Image:    &cri.ImageSpec{Image: image},
				Args:     tc.args, // the entrypoint stays the image's /main.wasm
				Envs:     []*cri.KeyValue{{Key: "GREETING", Value: "from the pod spec"}},
				LogPath:  tc.name + ".log",
			},
			SandboxConfig: podCfg,
		})
		if err != nil {
			t.Fatalf("CreateContainer %s: %v\ncontainerd log:\n%s", tc.name, err, d.log())
		}
		if _, err := rs.StartContainer(ctx, &cri.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
			t.Fatalf("StartContainer %s: %v", tc.name, err)
		}
		var st *cri.ContainerStatus
		for {
			r, err := rs.ContainerStatus(ctx, &cri.ContainerStatusRequest{ContainerId: c.ContainerId})
			if err != nil {
				t.Fatalf("ContainerStatus %s: %v", tc.name, err)
			}
			if st = r.Status; st.State == cri.ContainerState_CONTAINER_EXITED {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if st.ExitCode != tc.code {
			t.Errorf("%s: exit code %d, want %d (%s: %s)", tc.name, st.ExitCode, tc.code, st.Reason, st.Message)
		}
		b, err := os.ReadFile(filepath.Join(logs, tc.name+".log"))
		if err != nil || !strings.Contains(string(b), " stdout F "+tc.log) {
			t.Errorf("%s: CRI log %q (%v), want a stdout line %q", tc.name, b, err, tc.log)
		}
		if _, err := rs.RemoveContainer(ctx, &cri.RemoveContainerRequest{ContainerId: c.ContainerId}); err != nil {
			t.Errorf("RemoveContainer %s: %v", tc.name, err)
		}
	}
	// A Keep above the container's memory limit is killed by the kernel,
	// and the kubelet learns why (OOMKilled).
	oom, err := rs.CreateContainer(ctx, &cri.CreateContainerRequest{
		PodSandboxId: pod.PodSandboxId,
		Config: &cri.ContainerConfig{
			Metadata: &cri.ContainerMetadata{Name: "oom"}, Image: &cri.ImageSpec{Image: image},
			Args: []string{"alloc", "1024"}, LogPath: "oom.log",
			Linux: &cri.LinuxContainerConfig{Resources: &cri.LinuxContainerResources{MemoryLimitInBytes: 128 << 20}},
		},
		SandboxConfig: podCfg,
	})
	if err != nil {
		t.Fatalf("CreateContainer oom: %v", err)
	}
	if _, err := rs.StartContainer(ctx, &cri.StartContainerRequest{ContainerId: oom.ContainerId}); err != nil {
		t.Fatalf("StartContainer oom: %v", err)
	}
	for {
		r, err := rs.ContainerStatus(ctx, &cri.ContainerStatusRequest{ContainerId: oom.ContainerId})
		if err != nil {
			t.Fatalf("ContainerStatus oom: %v", err)
		}
		if st := r.Status; st.State == cri.ContainerState_CONTAINER_EXITED {
			if st.Reason != "OOMKilled" {
				b, _ := os.ReadFile(filepath.Join(logs, "oom.log"))
				t.Errorf("a Keep over its memory limit: exit code %d, reason %q, want OOMKilled; log:\n%s", st.ExitCode, st.Reason, b)
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := rs.RemoveContainer(ctx, &cri.RemoveContainerRequest{ContainerId: oom.ContainerId}); err != nil {
		t.Errorf("RemoveContainer oom: %v", err)
	}

	// A Keep that runs until stopped: statistics from its cgroup, no exec,
	// and the kubelet's stop (SIGTERM) ends it.
	c, err := rs.CreateContainer(ctx, &cri.CreateContainerRequest{
		PodSandboxId:  pod.PodSandboxId,
		Config:        &cri.ContainerConfig{Metadata: &cri.ContainerMetadata{Name: "sleep"}, Image: &cri.ImageSpec{Image: image}, Args: []string{"sleep"}, LogPath: "sleep.log"},
		SandboxConfig: podCfg,
	})
	if err != nil {
		t.Fatalf("CreateContainer sleep: %v", err)
	}
	if _, err := rs.StartContainer(ctx, &cri.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		t.Fatalf("StartContainer sleep: %v", err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if b, _ := os.ReadFile(filepath.Join(logs, "sleep.log")); strings.Contains(string(b), "sleeping") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sleeping Keep did not start within a minute")
		}
	}
	stats, err := rs.ContainerStats(ctx, &cri.ContainerStatsRequest{ContainerId: c.ContainerId})
	if err != nil || stats.Stats.GetMemory().GetWorkingSetBytes().GetValue() == 0 {
		t.Errorf("ContainerStats: %v, %v", stats, err)
	}
	if _, err := rs.ExecSync(ctx, &cri.ExecSyncRequest{ContainerId: c.ContainerId, Cmd: []string{"/bin/sh"}, Timeout: 5}); err == nil || !strings.Contains(err.Error(), "exec") {
		t.Errorf("ExecSync: %v, want an error saying a Keep has no exec", err)
	}
	if _, err := rs.StopContainer(ctx, &cri.StopContainerRequest{ContainerId: c.ContainerId, Timeout: 10}); err != nil {
		t.Errorf("StopContainer: %v", err)
	}
	if r, err := rs.ContainerStatus(ctx, &cri.ContainerStatusRequest{ContainerId: c.ContainerId}); err != nil || r.Status.State != cri.ContainerState_CONTAINER_EXITED || r.Status.ExitCode != 143 {
		t.Errorf("after StopContainer: %v, %v; want exited with 143", r.GetStatus(), err)
	}
	if _, err := rs.RemoveContainer(ctx, &cri.RemoveContainerRequest{ContainerId: c.ContainerId}); err != nil {
		t.Errorf("RemoveContainer sleep: %v", err)
	}

	if _, err := rs.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: pod.PodSandboxId}); err != nil {
		t.Errorf("StopPodSandbox: %v", err)
	}
	if _, err := rs.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: pod.PodSandboxId}); err != nil {
		t.Errorf("RemovePodSandbox: %v", err)
	}
}
