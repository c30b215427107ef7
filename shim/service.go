package shim

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/pkg/shutdown"
	"github.com/containerd/containerd/protobuf"
	"github.com/containerd/containerd/runtime"
	cshim "github.com/containerd/containerd/runtime/v2/shim"
	"github.com/containerd/containerd/sys"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/enarx-go/enarx/backend"
)

// status is a task's lifecycle state.
type status int

const (
	created status = iota
	running
	stopped
)

// ioWait bounds how long an exited task's output may take to drain: only
// a process that inherited the keep host's stdout and outlived it could
// hold it open longer (none does: a sandbox Keep dies with its host).
const ioWait = 5 * time.Second

// cgroupWait bounds how long removing a task's cgroup waits for its last
// processes to be gone.
const cgroupWait = 5 * time.Second

// ktask is the one task a shim serves (one shim per container).
type ktask struct {
	id, bundle            string
	stdin, stdout, stderr string
	launch                *launchMsg
	net                   netSetup
	io                    *taskIO
	cg                    *taskCgroup // nil when the spec names no cgroup
	// oomScoreAdj is the spec's Process.OOMScoreAdj (nil: none), which the
	// keep host gets in place of the shim's (setOOMScoreAdj).
	oomScoreAdj *int
	// rlimits are the spec's Process.Rlimits, which the keep host gets in
	// place of the shim's (setRlimits).
	rlimits []rlimit

	// Guarded by service.mu.
	status status
	pid    int
	// reaped is set once the keep host has been reaped, while its output
	// may still drain (status is still running then): its pid may belong
	// to another process, which must not be signalled.
	reaped     bool
	exitStatus int
	exitedAt   time.Time
	// done is closed when the task has stopped.
	done chan struct{}
}

// service is the containerd task API (task v2 over ttrpc) for Keeps.
type service struct {
	// ctx lives as long as the shim (not a request's): the FIFOs and
	// event forwarding use it.
	ctx    context.Context
	events chan any
	sd     shutdown.Service

	mu   sync.Mutex
	task *ktask
	// closed is set when events is closed (shim shutdown).
	closed bool
}

func newService(ctx context.Context, pub cshim.Publisher, sd shutdown.Service) *service {
	s := &service{ctx: ctx, events: make(chan any, 128), sd: sd}
	go s.forward(ctx, pub)
	sd.RegisterCallback(func(context.Context) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.closed {
			s.closed = true
			close(s.events)
		}
		return nil
	})
	return s
}

// RegisterTTRPC implements the shim library's ttrpc service hook.
func (s *service) RegisterTTRPC(server *ttrpc.Server) error {
	taskAPI.RegisterTaskService(server, s)
	return nil
}

var empty = &emptypb.Empty{}

func (s *service) get(id string) (*ktask, error) {
	if s.task == nil || s.task.id != id {
		return nil, errdefs.ToGRPCf(errdefs.ErrNotFound, "task %s is not served by this shim", id)
	}
	return s.task, nil
}

func notImplemented(what string) error {
	return errdefs.ToGRPCf(errdefs.ErrNotImplemented, "%s: a Keep does not support it", what)
}

// Create reads and checks the task's image and prepares its stdio; the Keep
// starts with Start.
func (s *service) Create(ctx context.Context, r *taskAPI.CreateTaskRequest) (*taskAPI.CreateTaskResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.task != nil {
		return nil, errdefs.ToGRPCf(errdefs.ErrAlreadyExists, "this shim already serves task %s; it serves one task", s.task.id)
	}
	if r.Terminal {
		return nil, errdefs.ToGRPCf(errdefs.ErrInvalidArgument, "a Keep has no terminal: run the container without a TTY (no -t / tty: true)")
	}
	if r.Checkpoint != "" || r.ParentCheckpoint != "" {
		return nil, notImplemented("restoring a checkpoint")
	}
	opts, err := parseOptions(r.Options)
	if err != nil {
		return nil, errdefs.ToGRPCf(errdefs.ErrInvalidArgument, "%v", err)
	}
	// Fail here, with the reason, rather than in the keep host.
	if _, err := backend.Select(opts.Backend); err != nil {
		return nil, errdefs.ToGRPCf(errdefs.ErrFailedPrecondition, "%v", err)
	}
	spec, err := readSpec(r.Bundle)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	rlimits, err := rlimitsOf(spec)
	if err != nil {
		return nil, errdefs.ToGRPCf(errdefs.ErrInvalidArgument, "%v", err)
	}
	level, _ := opts.logLevel()
	var m *launchMsg
	w := &workload{net: netOf(spec)}
	if podSandbox(spec) {
		m = &launchMsg{Pause: true, LoopbackUp: w.net.newNS, LogLevel: level}
	} else {
		if pkg, ok := packageOf(spec); ok {
			w, err = loadPackage(ctx, pkg, spec, opts)
		} else {
			w, err = loadWorkload(r.Bundle, spec, r.Rootfs)
		}
		if err == nil {
			if err = checkHostPaths(w, opts); err != nil {
				w.close()
			}
		}
		if err != nil {
			return nil, errdefs.ToGRPCf(errdefs.ErrInvalidArgument, "%v", err)
		}
		m = keepLaunch(w, spec, opts, level)
	}
	cg, err := newCgroup(spec)
	if err != nil {
		m.close()
		return nil, errdefs.ToGRPC(err)
	}
	tio, err := openIO(s.ctx, r.Stdin, r.Stdout, r.Stderr)
	if err != nil {
		m.close()
		_ = cg.delete(0)
		return nil, errdefs.ToGRPC(err)
	}
	s.task = &ktask{
		id: r.ID, bundle: r.Bundle, stdin: r.Stdin, stdout: r.Stdout, stderr: r.Stderr,
		launch: m, net: w.net, io: tio, cg: cg, oomScoreAdj: oomScoreAdjOf(spec), rlimits: rlimits, done: make(chan struct{}),
	}
	s.send(&eventstypes.TaskCreate{
		ContainerID: r.ID,
		Bundle:      r.Bundle,
		Rootfs:      r.Rootfs,
		IO:          &eventstypes.TaskIO{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr},
	})
	return &taskAPI.CreateTaskResponse{}, nil
}

// keepLaunch is the launch message of the Keep of workload w, which the
// shim loaded for spec: the Keeps of different Kubernetes namespaces get
// different cache scopes (cacheScope).
func keepLaunch(w *workload, spec *specs.Spec, opts *Options, level slog.Level) *launchMsg {
	return &launchMsg{
		module: w.module, Bundle: w.bundle, Config: w.config, ConfigName: "Enarx.toml", Args: w.args, Env: w.env,
		Backend: opts.Backend, Engine: opts.Engine, MemoryLimit: opts.MemoryMiB << 20,
		CacheDir: opts.CacheDir, NoCache: opts.NoCache, CacheScope: cacheScope(spec),
		LoopbackUp: w.net.newNS, LogLevel: level, RequireIsolation: opts.RequireIsolation,
	}
}

// oomScoreAdjOf is the spec's OOM score adjustment (nil: none). CRI sets the
// kubelet's, by the pod's QoS class: 1000 for a BestEffort pod, -997 for a
// Guaranteed one, -998 for a pod's sandbox.
func oomScoreAdjOf(spec *specs.Spec) *int {
	if spec.Process == nil || spec.Process.OOMScoreAdj == nil {
		return nil
	}
	adj := *spec.Process.OOMScoreAdj
	return &adj
}

// setOOMScoreAdj gives the keep host pid the spec's OOM score adjustment
// adj (nil: it keeps the shim's), as runc gives a container's process,
// before the keep host has its launch message, so before the Keep (and
// its processes, which inherit it) starts. Without it a Keep had the
// shim's score, containerd's plus one (-998 with containerd's systemd
// unit): a BestEffort pod's Keep, which the kernel's OOM killer should
// kill first, was the last it would kill, after every other pod.
//
// Lowering a score needs CAP_SYS_RESOURCE. A shim without it (a
// containerd confined without it) cannot give a Guaranteed pod's Keep
// the kubelet's lower score: the kernel refuses, and the keep host keeps
// the shim's higher one, which the OOM killer takes earlier, never later,
// than the pod asked. That is logged, not an error; the shim has no
// score to give away that it lacks.
func setOOMScoreAdj(ctx context.Context, pid int, adj *int) error {
	if adj == nil {
		return nil
	}
	err := sys.SetOOMScore(pid, *adj)
	if errors.Is(err, fs.ErrPermission) {
		if cur, cerr := sys.GetOOMScoreAdj(pid); cerr == nil && *adj < cur {
			log.G(ctx).WithError(err).Warnf("the keep host keeps oom_score_adj %d: lowering it to the OCI spec's %d needs CAP_SYS_RESOURCE, which the shim lacks", cur, *adj)
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("setting the keep host's oom_score_adj to the OCI spec's %d: %w", *adj, err)
	}
	return nil
}

// Start starts the task's keep host.
func (s *service) Start(ctx context.Context, r *taskAPI.StartRequest) (*taskAPI.StartResponse, error) {
	if r.ExecID != "" {
		return nil, notImplemented("exec")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	if t.status != created {
		return nil, errdefs.ToGRPCf(errdefs.ErrFailedPrecondition, "task %s was already started", t.id)
	}
	join := func(pid int) error {
		if t.cg != nil {
			if err := t.cg.add(pid); err != nil {
				return fmt.Errorf("moving the keep host into the task's cgroup: %w", err)
			}
		}
		if err := setOOMScoreAdj(ctx, pid, t.oomScoreAdj); err != nil {
			return err
		}
		return setRlimits(ctx, pid, t.rlimits)
	}
	kh, err := startKeepHost(t.launch, t.net, t.io.child, join)
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	t.io.closeChild()
	t.launch.close()
	t.launch = nil // the keep host has it; free the bundle
	t.status, t.pid = running, kh.pid
	if err := writePidFile(t.bundle, kh.pid); err != nil {
		log.G(ctx).WithError(err).Warn("recording the keep host's pid for cleanup after a shim crash")
	}
	s.send(&eventstypes.TaskStart{ContainerID: t.id, Pid: uint32(kh.pid)})
	if t.cg != nil {
		err := t.cg.watchOOM(t.done, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.send(&eventstypes.TaskOOM{ContainerID: t.id})
		})
		if err != nil {
			log.G(ctx).WithError(err).Warn("watching the task's cgroup for OOM kills")
		}
	}
	go s.waitExit(t, kh)
	return &taskAPI.StartResponse{Pid: uint32(kh.pid)}, nil
}

// waitExit records the keep host's exit once its output has drained, and
// publishes it.
func (s *service) waitExit(t *ktask, kh *keepHost) {
	code := <-kh.done
	s.mu.Lock()
	t.reaped = true
	s.mu.Unlock()
	drained := make(chan struct{})
	go func() { t.io.wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(ioWait):
	}
	s.mu.Lock()
	s.setExited(t, code)
	s.mu.Unlock()
}

// setExited marks t stopped with code and publishes TaskExit (s.mu held).
func (s *service) setExited(t *ktask, code int) {
	if t.status == stopped {
		return
	}
	t.status, t.exitStatus, t.exitedAt = stopped, code, time.Now()
	close(t.done)
	s.send(&eventstypes.TaskExit{
		ContainerID: t.id,
		ID:          t.id,
		Pid:         uint32(t.pid),
		ExitStatus:  uint32(code),
		ExitedAt:    protobuf.ToTimestamp(t.exitedAt),
	})
}

// Delete removes a stopped (or never started) task.
func (s *service) Delete(ctx context.Context, r *taskAPI.DeleteRequest) (*taskAPI.DeleteResponse, error) {
	if r.ExecID != "" {
		return nil, notImplemented("exec")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	if t.status == running {
		return nil, errdefs.ToGRPCf(errdefs.ErrFailedPrecondition, "task %s is running: kill it first", t.id)
	}
	if t.status == created {
		// Never started: nothing ran, the container is just removed.
		t.status, t.exitedAt = stopped, time.Now()
		close(t.done)
		t.launch.close()
		t.launch = nil
	}
	t.io.close()
	if err := t.cg.delete(cgroupWait); err != nil {
		log.G(ctx).WithError(err).Warn("removing the task's cgroup")
	}
	cleanupBundle(t.bundle)
	s.task = nil
	s.send(&eventstypes.TaskDelete{
		ContainerID: t.id,
		ID:          t.id,
		Pid:         uint32(t.pid),
		ExitStatus:  uint32(t.exitStatus),
		ExitedAt:    protobuf.ToTimestamp(t.exitedAt),
	})
	return &taskAPI.DeleteResponse{
		Pid:        uint32(t.pid),
		ExitStatus: uint32(t.exitStatus),
		ExitedAt:   protobuf.ToTimestamp(t.exitedAt),
	}, nil
}

// Kill signals the keep host; its default action ends it and the Keep with
// it (the workload cannot catch signals). A task that was never started
// stops at once with status 128+signal.
func (s *service) Kill(ctx context.Context, r *taskAPI.KillRequest) (*emptypb.Empty, error) {
	if r.ExecID != "" {
		return nil, notImplemented("exec")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	switch t.status {
	case created:
		s.setExited(t, 128+int(r.Signal))
		return empty, nil
	case stopped:
		return nil, errdefs.ToGRPCf(errdefs.ErrNotFound, "task %s: process already finished", t.id)
	}
	if t.reaped {
		// Gone (what it started dies with it: parent-death signals),
		// its pid free for another process; its exit is reported once
		// its output has drained. As for ESRCH below: nothing to do.
		return empty, nil
	}
	pid := t.pid
	if r.All {
		pid = -pid // the keep host's process group
	}
	if err := syscall.Kill(pid, syscall.Signal(r.Signal)); err != nil && !errors.Is(err, syscall.ESRCH) {
		return nil, errdefs.ToGRPCf(errdefs.ErrUnknown, "signalling the keep host: %v", err)
	}
	return empty, nil
}

// Wait blocks until the task has stopped.
func (s *service) Wait(ctx context.Context, r *taskAPI.WaitRequest) (*taskAPI.WaitResponse, error) {
	if r.ExecID != "" {
		return nil, notImplemented("exec")
	}
	s.mu.Lock()
	t, err := s.get(r.ID)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	select {
	case <-t.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return &taskAPI.WaitResponse{ExitStatus: uint32(t.exitStatus), ExitedAt: protobuf.ToTimestamp(t.exitedAt)}, nil
}

// State reports the task's state.
func (s *service) State(ctx context.Context, r *taskAPI.StateRequest) (*taskAPI.StateResponse, error) {
	if r.ExecID != "" {
		return nil, notImplemented("exec")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	st := map[status]task.Status{created: task.Status_CREATED, running: task.Status_RUNNING, stopped: task.Status_STOPPED}[t.status]
	resp := &taskAPI.StateResponse{
		ID: t.id, Bundle: t.bundle, Pid: uint32(t.pid), Status: st,
		Stdin: t.stdin, Stdout: t.stdout, Stderr: t.stderr,
		ExitStatus: uint32(t.exitStatus),
	}
	if t.status == stopped {
		resp.ExitedAt = protobuf.ToTimestamp(t.exitedAt)
	}
	return resp, nil
}

// Pids lists the keep host and its descendants (a sandbox Keep's
// processes).
func (s *service) Pids(ctx context.Context, r *taskAPI.PidsRequest) (*taskAPI.PidsResponse, error) {
	s.mu.Lock()
	t, err := s.get(r.ID)
	var pid int
	if err == nil && t.status == running && !t.reaped {
		pid = t.pid
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var out []*task.ProcessInfo
	if pid != 0 {
		for _, p := range descendants(pid) {
			out = append(out, &task.ProcessInfo{Pid: uint32(p)})
		}
	}
	return &taskAPI.PidsResponse{Processes: out}, nil
}

// descendants returns pid and every process below it, from /proc.
func descendants(pid int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, ok := parentOf(p); ok {
			children[pp] = append(children[pp], p)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// parentOf reads the parent pid from /proc/<pid>/stat (the field after the
// parenthesised command name, which may itself hold spaces or ')').
func parentOf(pid int) (int, bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, false
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, false
	}
	pp, err := strconv.Atoi(f[1])
	return pp, err == nil
}

// CloseIO ends the workload's stdin.
func (s *service) CloseIO(ctx context.Context, r *taskAPI.CloseIORequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	t, err := s.get(r.ID)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if r.Stdin {
		t.io.CloseStdin()
	}
	return empty, nil
}

// Connect reports the shim's and the task's pids.
func (s *service) Connect(ctx context.Context, r *taskAPI.ConnectRequest) (*taskAPI.ConnectResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var pid int
	if t, err := s.get(r.ID); err == nil {
		pid = t.pid
	}
	return &taskAPI.ConnectResponse{ShimPid: uint32(os.Getpid()), TaskPid: uint32(pid)}, nil
}

// Shutdown ends the shim once its task is deleted.
func (s *service) Shutdown(ctx context.Context, r *taskAPI.ShutdownRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.task != nil {
		return empty, nil
	}
	s.sd.Shutdown()
	return empty, nil
}

func (s *service) Pause(context.Context, *taskAPI.PauseRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("pause")
}

func (s *service) Resume(context.Context, *taskAPI.ResumeRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("resume")
}

func (s *service) Checkpoint(context.Context, *taskAPI.CheckpointTaskRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("checkpoint")
}

func (s *service) Exec(context.Context, *taskAPI.ExecProcessRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("exec (a Keep runs one workload)")
}

func (s *service) ResizePty(context.Context, *taskAPI.ResizePtyRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("a terminal")
}

func (s *service) Update(context.Context, *taskAPI.UpdateTaskRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("updating resources")
}

// Stats reports the task's cgroup metrics.
func (s *service) Stats(ctx context.Context, r *taskAPI.StatsRequest) (*taskAPI.StatsResponse, error) {
	s.mu.Lock()
	t, err := s.get(r.ID)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if t.cg == nil {
		return nil, errdefs.ToGRPCf(errdefs.ErrNotFound, "task %s has no cgroup (its OCI spec names none)", t.id)
	}
	a, err := t.cg.stats()
	if err != nil {
		return nil, errdefs.ToGRPC(err)
	}
	return &taskAPI.StatsResponse{Stats: a}, nil
}

// forward publishes the task's events to containerd, in order.
func (s *service) forward(ctx context.Context, pub cshim.Publisher) {
	ns, _ := namespaces.Namespace(ctx)
	ctx = namespaces.WithNamespace(context.Background(), ns)
	for e := range s.events {
		if err := pub.Publish(ctx, topic(e), e); err != nil {
			log.G(ctx).WithError(err).Error("publishing a task event to containerd")
		}
	}
	pub.Close()
}

func topic(e any) string {
	switch e.(type) {
	case *eventstypes.TaskCreate:
		return runtime.TaskCreateEventTopic
	case *eventstypes.TaskStart:
		return runtime.TaskStartEventTopic
	case *eventstypes.TaskExit:
		return runtime.TaskExitEventTopic
	case *eventstypes.TaskOOM:
		return runtime.TaskOOMEventTopic
	case *eventstypes.TaskDelete:
		return runtime.TaskDeleteEventTopic
	}
	return runtime.TaskUnknownTopic
}

// send queues an event for containerd (s.mu held): none once the shim is
// shutting down.
func (s *service) send(e any) {
	if !s.closed {
		s.events <- e
	}
}

var _ taskAPI.TaskService = (*service)(nil)
