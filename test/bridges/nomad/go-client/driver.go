package main

// driver: what Nomad's client does with a task driver plugin. It launches the plugin and
// configures it (PluginInfo, ConfigSchema, SetConfig with the msgpack Nomad makes), asks for
// Capabilities and TaskConfigSchema, keeps Fingerprint and TaskEvents open, and runs tasks as
// its task runner does: stdout and stderr are FIFOs it makes and reads like logmon; a task that
// exits with a code; a long one that is inspected, measured (TaskStats), signalled, stopped with
// a timeout and SIGINT, and destroyed. Then the recovery drill: a long task, the plugin process
// SIGKILLed under it, a fresh plugin configured again and given RecoverTask with the stored
// handle only; the task must still run and write to the same FIFO, and stop as before.
//
// The scenario (-scenario JSON) says what each driver's tasks are and what to expect of them.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	basepb "taskhost.test/nomadproto/base"
	drvpb "taskhost.test/nomadproto/drivers"
	hclpb "taskhost.test/nomadproto/hclspec"
	structspb "taskhost.test/nomadproto/structs"
)

func init() {
	register("driver", Subcommand{
		Usage: "driver -scenario JSON -- <plugin command>",
		Flags: func(fs *flag.FlagSet) func(s *Session) (interface{}, error) {
			scenario := fs.String("scenario", "", "the driver's tasks and what to expect (JSON, see driverScenario)")
			return func(s *Session) (interface{}, error) { return runDriver(s, *scenario) }
		},
	})
}

// exitExpect is the exit a task must end with; an unset field is not checked.
type exitExpect struct {
	ExitCode *int32 `json:"exitCode"`
	Signal   *int32 `json:"signal"`
}

func (e exitExpect) matches(r *drvpb.ExitResult) bool {
	return r != nil && (e.ExitCode == nil || *e.ExitCode == r.GetExitCode()) && (e.Signal == nil || *e.Signal == r.GetSignal())
}

func (e exitExpect) String() string {
	b, _ := json.Marshal(e)
	return string(b)
}

// exitScenario is a task that ends on its own.
type exitScenario struct {
	Config   json.RawMessage `json:"config"`
	ExitCode int32           `json:"exitCode"`
	// Everything the FIFOs carry, up to EOF (unset: only EOF is checked).
	Stdout *string `json:"stdout"`
	Stderr *string `json:"stderr"`
}

// stopScenario is how a task is stopped and how it must end.
type stopScenario struct {
	// StopTask's signal: a job's kill_signal (empty: Nomad's default, SIGINT).
	StopSignal string `json:"stopSignal"`
	// StopTask's timeout, a job's kill_timeout (default 5 s).
	StopTimeoutMs int64      `json:"stopTimeoutMs"`
	Stopped       exitExpect `json:"stopped"`
}

type driverScenario struct {
	// The plugin's config for SetConfig, in HCL names.
	Config json.RawMessage `json:"config"`
	// An attribute the fingerprint must have: its name, type (bool, int, float, string) and value.
	Attribute *struct {
		Name  string      `json:"name"`
		Type  string      `json:"type"`
		Value interface{} `json:"value"`
	} `json:"attribute"`
	// A task that exits with a code, and one whose output is checked (each left out when unset).
	ExitTask   *exitScenario `json:"exitTask"`
	OutputTask *exitScenario `json:"outputTask"`
	// A task config StartTask must refuse: InvalidArgument whose message names Path (HCL names).
	BadConfig *struct {
		Config json.RawMessage `json:"config"`
		Path   string          `json:"path"`
	} `json:"badConfig"`
	LongTask struct {
		Config json.RawMessage `json:"config"`
		// Stdout text that shows the task runs (any output when empty; unset: InspectTask says
		// RUNNING, for a task that prints nothing).
		Ready *string `json:"ready"`
		// SignalTask's signal (no SignalTask when empty), and what shows it arrived: stdout text,
		// or a task event's message.
		Signal       string `json:"signal"`
		SignalOutput string `json:"signalOutput"`
		SignalEvent  string `json:"signalEvent"`
		// ExecTask's command in the running task and its exact stdout (no ExecTask when unset).
		Exec *struct {
			Command []string `json:"command"`
			Stdout  string   `json:"stdout"`
		} `json:"exec"`
		stopScenario
		// Text stdout holds when it reaches EOF.
		Output []string `json:"output"`
		// Whether it keeps writing while it runs (checked across the recovery).
		KeepsWriting bool `json:"keepsWriting"`
	} `json:"longTask"`
	// A task that ignores its stop signal: StopTask must still end it once the timeout is up.
	StubbornTask *struct {
		Config json.RawMessage `json:"config"`
		stopScenario
	} `json:"stubbornTask"`
}

type driverRun struct {
	s *Session
	// The alloc dirs made, removed at the end.
	dirs   []string
	sc     driverScenario
	steps  *Steps
	events *eventLog
}

func runDriver(s *Session, scenarioText string) (interface{}, error) {
	r := &driverRun{s: s, steps: &Steps{}, events: &eventLog{}}
	if err := json.Unmarshal([]byte(scenarioText), &r.sc); err != nil {
		return nil, fmt.Errorf("-scenario is not a driver scenario: %v", err)
	}
	defer func() {
		for _, d := range r.dirs {
			_ = os.RemoveAll(d)
		}
	}()
	if len(r.sc.Config) == 0 {
		r.sc.Config = json.RawMessage("{}")
	}
	p, err := s.Launch()
	if err != nil {
		return r.steps, err
	}
	if !r.configure(p, "") {
		return r.steps, fmt.Errorf("the plugin could not be configured")
	}
	drv := drvpb.NewDriverClient(p.Conn)
	caps := r.capabilities(drv)
	spec := r.taskConfigSchema(drv)
	if spec == nil {
		return r.steps, fmt.Errorf("no task config schema")
	}
	fp := r.fingerprint(drv)
	r.followEvents(drv)

	if r.sc.ExitTask != nil {
		r.exitTask(drv, "exit", "web", spec, *r.sc.ExitTask)
	}
	if r.sc.OutputTask != nil {
		r.exitTask(drv, "output", "output", spec, *r.sc.OutputTask)
	}
	if r.sc.BadConfig != nil {
		r.badConfig(drv, spec)
	}
	r.longTask(drv, spec, caps)
	if r.sc.StubbornTask != nil {
		r.stubbornTask(drv, spec)
	}
	fp.checkOpen(r.steps)
	return r.steps, r.recovery(p, drv, spec)
}

// configure does what Nomad's loader does with a fresh plugin process.
func (r *driverRun) configure(p *Plugin, prefix string) bool {
	base := basepb.NewBasePluginClient(p.Conn)
	ctx, cancel := rpcContext(60 * time.Second)
	defer cancel()
	info, err := base.PluginInfo(ctx, &basepb.PluginInfoRequest{})
	if err == nil && info.GetType() != basepb.PluginType_DRIVER {
		err = fmt.Errorf("type %s, not DRIVER", info.GetType())
	}
	if !r.steps.Err(prefix+"pluginInfo", err, nil, fmt.Sprintf("a DRIVER plugin named %q", info.GetName())) {
		return false
	}
	schema, err := base.ConfigSchema(ctx, &basepb.ConfigSchemaRequest{})
	if !r.steps.Err(prefix+"configSchema", err, nil, "an hclspec") {
		return false
	}
	packed, err := NomadConfig(schema.GetSpec(), string(r.sc.Config))
	if err == nil {
		_, err = base.SetConfig(ctx, &basepb.SetConfigRequest{MsgpackConfig: packed, PluginApiVersion: "v0.1.0"})
	}
	return r.steps.Err(prefix+"setConfig", err, nil, fmt.Sprintf("config %s taken", r.sc.Config))
}

func (r *driverRun) capabilities(drv drvpb.DriverClient) *drvpb.DriverCapabilities {
	ctx, cancel := rpcContext(60 * time.Second)
	defer cancel()
	res, err := drv.Capabilities(ctx, &drvpb.CapabilitiesRequest{})
	c := res.GetCapabilities()
	var value interface{}
	if c != nil {
		modes := []string{}
		for _, m := range c.GetNetworkIsolationModes() {
			modes = append(modes, m.String())
		}
		value = map[string]interface{}{
			"send_signals": c.GetSendSignals(), "exec": c.GetExec(), "fs_isolation": c.GetFsIsolation().String(),
			"network_isolation_modes": modes, "mount_configs": c.GetMountConfigs().String(),
		}
	} else if err == nil {
		err = fmt.Errorf("no capabilities in the answer")
	}
	r.steps.Err("capabilities", err, value, "capabilities")
	if c == nil {
		c = &drvpb.DriverCapabilities{}
	}
	return c
}

func (r *driverRun) taskConfigSchema(drv drvpb.DriverClient) *hclpb.Spec {
	ctx, cancel := rpcContext(60 * time.Second)
	defer cancel()
	res, err := drv.TaskConfigSchema(ctx, &drvpb.TaskConfigSchemaRequest{})
	if err == nil && res.GetSpec().GetObject() == nil {
		err = fmt.Errorf("the spec is not an object")
	}
	names := []string{}
	for n := range res.GetSpec().GetObject().GetAttributes() {
		names = append(names, n)
	}
	sort.Strings(names)
	if !r.steps.Err("taskConfigSchema", err, names, fmt.Sprintf("an object spec of %s", strings.Join(names, ", "))) {
		return nil
	}
	return res.GetSpec()
}

// fingerprintStream is Nomad's open Fingerprint stream: it reads every message until the end.
type fingerprintStream struct {
	mu       sync.Mutex
	messages int
	ended    error
}

func (f *fingerprintStream) checkOpen(steps *Steps) {
	f.mu.Lock()
	defer f.mu.Unlock()
	steps.Add("fingerprint.open", f.ended == nil, f.messages, "after %d message(s) the stream is still open (ended: %v)", f.messages, f.ended)
}

func (r *driverRun) fingerprint(drv drvpb.DriverClient) *fingerprintStream {
	f := &fingerprintStream{}
	stream, err := drv.Fingerprint(context.Background(), &drvpb.FingerprintRequest{})
	if err != nil {
		r.steps.Err("fingerprint", err, nil, "")
		f.ended = err
		return f
	}
	first := make(chan *drvpb.FingerprintResponse, 1)
	go func() {
		for {
			msg, err := stream.Recv()
			f.mu.Lock()
			if err != nil {
				f.ended = err
				f.mu.Unlock()
				close(first)
				return
			}
			f.messages++
			n := f.messages
			f.mu.Unlock()
			if n == 1 {
				first <- msg
			}
		}
	}()
	var msg *drvpb.FingerprintResponse
	select {
	case msg = <-first:
	case <-time.After(60 * time.Second):
	}
	if msg == nil {
		r.steps.Add("fingerprint", false, nil, "no first message (stream ended: %v)", f.ended)
		return f
	}
	attrs := map[string]interface{}{}
	untyped := []string{}
	for name, a := range msg.GetAttributes() {
		t, v := attributeValue(a)
		if t == "" {
			untyped = append(untyped, name)
		}
		attrs[name] = map[string]interface{}{"type": t, "value": v}
	}
	value := map[string]interface{}{"health": msg.GetHealth().String(), "description": msg.GetHealthDescription(), "attributes": attrs}
	r.steps.Add("fingerprint", msg.GetHealth() == drvpb.FingerprintResponse_HEALTHY && len(untyped) == 0, value,
		"first message: %s (%q), %d attribute(s), untyped: %v", msg.GetHealth(), msg.GetHealthDescription(), len(attrs), untyped)
	if want := r.sc.Attribute; want != nil {
		got, ok := attrs[want.Name].(map[string]interface{})
		pass := ok && got["type"] == want.Type && fmt.Sprint(got["value"]) == fmt.Sprint(want.Value)
		r.steps.Add("fingerprint.attribute", pass, got, "%s: want %s %v, got %v", want.Name, want.Type, want.Value, got)
	}
	return f
}

// attributeValue is a typed attribute's type name and value ("" when it has none).
func attributeValue(a *structspb.Attribute) (string, interface{}) {
	switch v := a.GetValue().(type) {
	case *structspb.Attribute_BoolVal:
		return "bool", v.BoolVal
	case *structspb.Attribute_IntVal:
		return "int", v.IntVal
	case *structspb.Attribute_FloatVal:
		return "float", v.FloatVal
	case *structspb.Attribute_StringVal:
		return "string", v.StringVal
	}
	return "", nil
}

// eventLog keeps the TaskEvents stream's messages.
type eventLog struct {
	mu     sync.Mutex
	events []*drvpb.DriverTaskEvent
}

func (e *eventLog) has(taskID, text string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.events {
		if ev.GetTaskId() == taskID && strings.Contains(ev.GetMessage(), text) && ev.GetTimestamp().AsTime().Unix() > 0 {
			return true
		}
	}
	return false
}

func (r *driverRun) followEvents(drv drvpb.DriverClient) {
	stream, err := drv.TaskEvents(context.Background(), &drvpb.TaskEventsRequest{})
	if err != nil {
		r.steps.Err("taskEvents", err, nil, "")
		return
	}
	go func() {
		for {
			ev, err := stream.Recv()
			if err != nil {
				return
			}
			r.events.mu.Lock()
			r.events.events = append(r.events.events, ev)
			r.events.mu.Unlock()
		}
	}()
}

// nomadTask is a task as Nomad's task runner prepares it: an alloc dir, FIFOs being read.
type nomadTask struct {
	cfg            *drvpb.TaskConfig
	stdout, stderr *FifoReader
}

func (r *driverRun) newTask(name string, spec *hclpb.Spec, config json.RawMessage) (*nomadTask, error) {
	allocID := uuid()
	allocDir, err := os.MkdirTemp("", "nomad-go-alloc-")
	if err != nil {
		return nil, err
	}
	r.dirs = append(r.dirs, allocDir)
	logs := filepath.Join(allocDir, "alloc", "logs")
	for _, d := range []string{logs, filepath.Join(allocDir, name, "local"), filepath.Join(allocDir, name, "secrets")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	stdout, err := NewFifoReader(filepath.Join(logs, "."+name+".stdout.fifo"))
	if err != nil {
		return nil, err
	}
	stderr, err := NewFifoReader(filepath.Join(logs, "."+name+".stderr.fifo"))
	if err != nil {
		return nil, err
	}
	packed, err := NomadConfig(spec, string(config))
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	taskDir := filepath.Join(allocDir, name)
	return &nomadTask{
		cfg: &drvpb.TaskConfig{
			Id: allocID + "/" + name + "/" + randomHex(4), Name: name, MsgpackDriverConfig: packed,
			Env: map[string]string{
				"PATH": os.Getenv("PATH"), "NOMAD_TASK_NAME": name, "NOMAD_ALLOC_ID": allocID, "NOMAD_GROUP_NAME": "group",
				"NOMAD_JOB_NAME": "job", "NOMAD_ALLOC_DIR": filepath.Join(allocDir, "alloc"),
				"NOMAD_TASK_DIR": filepath.Join(taskDir, "local"), "NOMAD_SECRETS_DIR": filepath.Join(taskDir, "secrets"),
			},
			DeviceEnv: map[string]string{},
			Resources: &drvpb.Resources{AllocatedResources: &drvpb.AllocatedTaskResources{
				Cpu: &drvpb.AllocatedCpuResources{CpuShares: 100}, Memory: &drvpb.AllocatedMemoryResources{MemoryMb: 64},
			}},
			AllocDir: allocDir, StdoutPath: stdout.Path, StderrPath: stderr.Path,
			TaskGroupName: "group", JobName: "job", JobId: "job", AllocId: allocID, Namespace: "default",
			NodeName: host, NodeId: uuid(),
		},
		stdout: stdout, stderr: stderr,
	}, nil
}

func (r *driverRun) start(drv drvpb.DriverClient, prefix, name string, spec *hclpb.Spec, config json.RawMessage) (*nomadTask, *drvpb.TaskHandle) {
	task, err := r.newTask(name, spec, config)
	if err != nil {
		r.steps.Err(prefix+".start", err, nil, "")
		return nil, nil
	}
	ctx, cancel := rpcContext(120 * time.Second)
	defer cancel()
	res, err := drv.StartTask(ctx, &drvpb.StartTaskRequest{Task: task.cfg})
	h := res.GetHandle()
	if err == nil && (h == nil || h.GetConfig().GetId() != task.cfg.Id || len(h.GetDriverState()) == 0) {
		err = fmt.Errorf("the handle has config.id %q (want %q) and %d bytes of driver_state", h.GetConfig().GetId(), task.cfg.Id, len(h.GetDriverState()))
	}
	value := map[string]interface{}{"result": res.GetResult().String(), "state": h.GetState().String(), "version": h.GetVersion(), "id": task.cfg.Id}
	if !r.steps.Err(prefix+".start", err, value, fmt.Sprintf("%s, handle %s", res.GetResult(), h.GetState())) {
		return nil, nil
	}
	return task, h
}

func (r *driverRun) wait(drv drvpb.DriverClient, name, id string, want exitExpect) {
	ctx, cancel := rpcContext(180 * time.Second)
	defer cancel()
	res, err := drv.WaitTask(ctx, &drvpb.WaitTaskRequest{TaskId: id})
	if err == nil && (!want.matches(res.GetResult()) || res.GetErr() != "") {
		err = fmt.Errorf("exit %v err %q, want %s", res.GetResult(), res.GetErr(), want)
	}
	e := res.GetResult()
	r.steps.Err(name, err, exitValue(e), fmt.Sprintf("exit code %d, signal %d", e.GetExitCode(), e.GetSignal()))
}

func exitValue(e *drvpb.ExitResult) interface{} {
	if e == nil {
		return nil
	}
	return map[string]interface{}{"exit_code": e.GetExitCode(), "signal": e.GetSignal(), "oom_killed": e.GetOomKilled()}
}

func (r *driverRun) inspect(drv drvpb.DriverClient, name, id string, want drvpb.TaskState) *drvpb.TaskStatus {
	ctx, cancel := rpcContext(60 * time.Second)
	defer cancel()
	res, err := drv.InspectTask(ctx, &drvpb.InspectTaskRequest{TaskId: id})
	st := res.GetTask()
	if err == nil {
		switch {
		case st.GetId() != id || st.GetState() != want:
			err = fmt.Errorf("task %q in state %s, want %q %s", st.GetId(), st.GetState(), id, want)
		case st.GetStartedAt().AsTime().Unix() <= 0:
			err = fmt.Errorf("no started_at")
		case want == drvpb.TaskState_EXITED && st.GetCompletedAt().AsTime().Unix() <= 0:
			err = fmt.Errorf("no completed_at")
		}
	}
	value := map[string]interface{}{"state": st.GetState().String(), "result": exitValue(st.GetResult())}
	r.steps.Err(name, err, value, fmt.Sprintf("%s since %s", st.GetState(), st.GetStartedAt().AsTime().Format(time.RFC3339)))
	return st
}

func (r *driverRun) destroy(drv drvpb.DriverClient, name, id string, force bool) {
	ctx, cancel := rpcContext(120 * time.Second)
	defer cancel()
	_, err := drv.DestroyTask(ctx, &drvpb.DestroyTaskRequest{TaskId: id, Force: force})
	r.steps.Err(name, err, nil, "destroyed")
}

// fifoText checks that a FIFO reached EOF with the text wanted (exact, or containing each of contains).
func (r *driverRun) fifoText(name string, fifo *FifoReader, exact *string, contains []string) {
	text, eof := fifo.WaitEOF(120 * time.Second)
	missing := []string{}
	for _, c := range contains {
		if !strings.Contains(text, c) {
			missing = append(missing, c)
		}
	}
	pass := eof && len(missing) == 0 && (exact == nil || text == *exact)
	r.steps.Add(name, pass, text, "EOF: %v, %d bytes %q, missing %q", eof, len(text), clip(text), missing)
}

func (r *driverRun) exitTask(drv drvpb.DriverClient, prefix, name string, spec *hclpb.Spec, want exitScenario) {
	task, _ := r.start(drv, prefix, name, spec, want.Config)
	if task == nil {
		return
	}
	code := want.ExitCode
	r.wait(drv, prefix+".wait", task.cfg.Id, exitExpect{ExitCode: &code})
	r.fifoText(prefix+".stdout", task.stdout, want.Stdout, nil)
	r.fifoText(prefix+".stderr", task.stderr, want.Stderr, nil)
	if st := r.inspect(drv, prefix+".inspect", task.cfg.Id, drvpb.TaskState_EXITED); st != nil && st.GetResult().GetExitCode() != code {
		r.steps.Add(prefix+".inspect.result", false, nil, "InspectTask says exit code %d, want %d", st.GetResult().GetExitCode(), code)
	}
	r.destroy(drv, prefix+".destroy", task.cfg.Id, false)
	ctx, cancel := rpcContext(60 * time.Second)
	defer cancel()
	_, err := drv.WaitTask(ctx, &drvpb.WaitTaskRequest{TaskId: task.cfg.Id})
	r.steps.Add(prefix+".gone", status.Code(err) == codes.NotFound, nil, "WaitTask after DestroyTask: %v", err)
}

// badConfig is a job whose task config the driver refuses: StartTask fails with InvalidArgument
// naming the HCL path at fault, and leaves no task behind.
func (r *driverRun) badConfig(drv drvpb.DriverClient, spec *hclpb.Spec) {
	want := r.sc.BadConfig
	task, err := r.newTask("bad", spec, want.Config)
	if err != nil {
		r.steps.Err("badConfig.start", err, nil, "")
		return
	}
	ctx, cancel := rpcContext(120 * time.Second)
	defer cancel()
	res, err := drv.StartTask(ctx, &drvpb.StartTaskRequest{Task: task.cfg})
	c := errCheck(err)
	named := strings.Contains(c.Error, want.Path+":")
	r.steps.Add("badConfig.start", err != nil && c.Code == codes.InvalidArgument.String() && named, c,
		"StartTask of %s: %s (want InvalidArgument naming %s; handle %v)", want.Config, describeOrNil(err), want.Path, res.GetHandle() != nil)
	_, err = drv.InspectTask(ctx, &drvpb.InspectTaskRequest{TaskId: task.cfg.Id})
	r.steps.Add("badConfig.gone", status.Code(err) == codes.NotFound, nil, "InspectTask of the refused task: %v", err)
}

func describeOrNil(err error) string {
	if err == nil {
		return "no error"
	}
	return describe(err)
}

// ready checks that a task started running: its ready text on stdout, or InspectTask RUNNING.
func (r *driverRun) ready(drv drvpb.DriverClient, name string, task *nomadTask) {
	if want := r.sc.LongTask.Ready; want != nil {
		r.steps.Add(name, task.stdout.WaitText(60*time.Second, *want), nil, "stdout so far: %q", clip(text(task.stdout)))
		return
	}
	r.inspect(drv, name, task.cfg.Id, drvpb.TaskState_RUNNING)
}

// longOutput is the text the long task's stdout holds at EOF.
func (r *driverRun) longOutput() []string {
	want := r.sc.LongTask
	if want.Ready == nil {
		return want.Output
	}
	return append([]string{*want.Ready}, want.Output...)
}

func (r *driverRun) longTask(drv drvpb.DriverClient, spec *hclpb.Spec, caps *drvpb.DriverCapabilities) {
	want := r.sc.LongTask
	task, _ := r.start(drv, "long", "long", spec, want.Config)
	if task == nil {
		return
	}
	id := task.cfg.Id
	r.ready(drv, "long.ready", task)
	r.inspect(drv, "long.inspect", id, drvpb.TaskState_RUNNING)
	r.stats(drv, id)
	if want.Signal != "" {
		r.signal(drv, task, caps)
	}
	if want.Exec != nil {
		r.exec(drv, id, caps)
	}
	r.stop(drv, "long", id, want.stopScenario)
	r.fifoText("long.stdout", task.stdout, nil, r.longOutput())
	r.destroy(drv, "long.destroy", id, false)
}

// exec is Nomad's ExecTask (nomad alloc exec without a terminal) in the running task.
func (r *driverRun) exec(drv drvpb.DriverClient, id string, caps *drvpb.DriverCapabilities) {
	want := r.sc.LongTask.Exec
	ctx, cancel := rpcContext(60 * time.Second)
	defer cancel()
	res, err := drv.ExecTask(ctx, &drvpb.ExecTaskRequest{TaskId: id, Command: want.Command, Timeout: durationpb.New(30 * time.Second)})
	if !caps.GetExec() {
		r.steps.Add("long.exec", status.Code(err) == codes.Unimplemented, nil, "a driver that cannot exec: %v", err)
		return
	}
	out := string(res.GetStdout())
	if err == nil && (out != want.Stdout || res.GetResult().GetExitCode() != 0) {
		err = fmt.Errorf("stdout %q, exit code %d; want %q and 0 (stderr %q)", out, res.GetResult().GetExitCode(), want.Stdout, res.GetStderr())
	}
	r.steps.Err("long.exec", err, out, fmt.Sprintf("%q: stdout %q, exit code 0", want.Command, out))
}

// stubbornTask ignores its stop signal: StopTask with a short timeout must kill it, and WaitTask
// then reports the kill.
func (r *driverRun) stubbornTask(drv drvpb.DriverClient, spec *hclpb.Spec) {
	want := r.sc.StubbornTask
	task, _ := r.start(drv, "stubborn", "stubborn", spec, want.Config)
	if task == nil {
		return
	}
	id := task.cfg.Id
	r.inspect(drv, "stubborn.running", id, drvpb.TaskState_RUNNING)
	started := time.Now()
	r.stop(drv, "stubborn", id, want.stopScenario)
	// Not a deadline (the machine may be busy): that the timeout was given before the kill.
	timeout := time.Duration(want.StopTimeoutMs) * time.Millisecond
	took := time.Since(started)
	r.steps.Add("stubborn.timeout", took >= timeout*9/10, took.String(), "ended %s after StopTask, with a %s timeout", took, timeout)
	r.fifoText("stubborn.stdout", task.stdout, nil, nil)
	r.destroy(drv, "stubborn.destroy", id, false)
}

// stats reads two TaskStats messages at a 200 ms interval: each must have a timestamp (Nomad
// drops those without), the task's id, and a later time than the one before.
func (r *driverRun) stats(drv drvpb.DriverClient, id string) {
	ctx, cancel := rpcContext(120 * time.Second)
	defer cancel()
	stream, err := drv.TaskStats(ctx, &drvpb.TaskStatsRequest{TaskId: id, CollectionInterval: durationpb.New(200 * time.Millisecond)})
	times := []string{}
	var last time.Time
	for i := 0; err == nil && i < 2; i++ {
		var msg *drvpb.TaskStatsResponse
		msg, err = stream.Recv()
		if err != nil {
			break
		}
		st := msg.GetStats()
		if st.GetTimestamp() == nil {
			err = fmt.Errorf("message %d has no timestamp", i+1)
			break
		}
		at := st.GetTimestamp().AsTime()
		times = append(times, at.Format(time.RFC3339Nano))
		switch {
		case st.GetId() != id:
			err = fmt.Errorf("message %d is about %q", i+1, st.GetId())
		case at.Before(time.Now().Add(-10*time.Minute)) || at.After(time.Now().Add(time.Minute)):
			err = fmt.Errorf("message %d has timestamp %s, not now", i+1, at)
		case !at.After(last):
			err = fmt.Errorf("message %d's timestamp %s is not after %s", i+1, at, last)
		}
		last = at
	}
	r.steps.Err("long.stats", err, times, fmt.Sprintf("timestamps %v", times))
}

func (r *driverRun) signal(drv drvpb.DriverClient, task *nomadTask, caps *drvpb.DriverCapabilities) {
	want := r.sc.LongTask
	ctx, cancel := rpcContext(60 * time.Second)
	defer cancel()
	_, err := drv.SignalTask(ctx, &drvpb.SignalTaskRequest{TaskId: task.cfg.Id, Signal: want.Signal})
	if !caps.GetSendSignals() {
		r.steps.Add("long.signal", status.Code(err) == codes.Unimplemented, nil, "a driver that cannot signal: %v", err)
		return
	}
	if !r.steps.Err("long.signal", err, nil, want.Signal+" sent") {
		return
	}
	if want.SignalOutput != "" {
		r.steps.Add("long.signal.seen", task.stdout.WaitText(60*time.Second, want.SignalOutput), nil,
			"stdout has %q: %q", want.SignalOutput, clip(text(task.stdout)))
	}
	if want.SignalEvent != "" {
		deadline := time.Now().Add(60 * time.Second)
		for !r.events.has(task.cfg.Id, want.SignalEvent) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		r.steps.Add("long.signal.seen", r.events.has(task.cfg.Id, want.SignalEvent), nil, "a task event saying %q", want.SignalEvent)
	}
}

// stop is Nomad's kill: StopTask with the task's kill timeout and signal, then WaitTask.
func (r *driverRun) stop(drv drvpb.DriverClient, prefix, id string, want stopScenario) {
	timeout := time.Duration(want.StopTimeoutMs) * time.Millisecond
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := rpcContext(120*time.Second + timeout)
	defer cancel()
	signal := want.StopSignal
	if signal == "" {
		signal = "SIGINT"
	}
	_, err := drv.StopTask(ctx, &drvpb.StopTaskRequest{TaskId: id, Timeout: durationpb.New(timeout), Signal: signal})
	r.steps.Err(prefix+".stop", err, nil, fmt.Sprintf("%s, timeout %s", signal, timeout))
	r.wait(drv, prefix+".wait", id, want.Stopped)
}

func (r *driverRun) recovery(p *Plugin, drv drvpb.DriverClient, spec *hclpb.Spec) error {
	want := r.sc.LongTask
	task, handle := r.start(drv, "recover", "survivor", spec, want.Config)
	if task == nil {
		return nil
	}
	id := task.cfg.Id
	r.ready(drv, "recover.ready", task)

	// A crash, not Nomad's Shutdown: SIGKILL of the plugin's process.
	pid := p.Client.ReattachConfig().Pid
	err := syscall.Kill(pid, syscall.SIGKILL)
	deadline := time.Now().Add(60 * time.Second)
	for err == nil && !p.Client.Exited() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err == nil && !p.Client.Exited() {
		err = fmt.Errorf("go-plugin did not see pid %d exit", pid)
	}
	if !r.steps.Err("recover.kill", err, nil, fmt.Sprintf("pid %d SIGKILLed; go-plugin saw it exit", pid)) {
		return nil
	}

	fresh, err := r.s.Launch()
	if !r.steps.Err("recover.launch", err, nil, "a fresh plugin process") || !r.configure(fresh, "recover.") {
		return nil
	}
	drv = drvpb.NewDriverClient(fresh.Conn)
	before := task.stdout.Len()
	ctx, cancel := rpcContext(120 * time.Second)
	defer cancel()
	// As Nomad does: the stored handle, and no task id.
	_, err = drv.RecoverTask(ctx, &drvpb.RecoverTaskRequest{Handle: handle})
	if !r.steps.Err("recover.recoverTask", err, nil, "recovered from the handle alone") {
		return nil
	}
	r.inspect(drv, "recover.running", id, drvpb.TaskState_RUNNING)
	if want.KeepsWriting {
		grew := task.stdout.WaitFor(60*time.Second, func(t string, _ bool) bool { return len(t) > before })
		r.steps.Add("recover.output", grew, nil, "the FIFO had %d bytes at RecoverTask, %d now", before, task.stdout.Len())
	}
	_, err = drv.RecoverTask(ctx, &drvpb.RecoverTaskRequest{Handle: handle})
	r.steps.Err("recover.again", err, nil, "a second RecoverTask is a no-op")
	r.stop(drv, "recover", id, want.stopScenario)
	r.fifoText("recover.stdout", task.stdout, nil, r.longOutput())
	r.destroy(drv, "recover.destroy", id, false)

	started := time.Now()
	fresh.Client.Kill()
	graceful := !r.s.LogContains("plugin failed to exit gracefully")
	r.steps.Add("kill", fresh.Client.Exited() && graceful, nil, "Kill: exited %v, gracefully %v, in %s", fresh.Client.Exited(), graceful, time.Since(started))
	return nil
}

func text(f *FifoReader) string {
	t, _, _ := f.State()
	return t
}

// clip keeps a long text's tail for a message.
func clip(s string) string {
	if len(s) > 300 {
		return "…" + s[len(s)-300:]
	}
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = io.ReadFull(rand.Reader, b)
	return hex.EncodeToString(b)
}

func uuid() string {
	h := randomHex(16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
