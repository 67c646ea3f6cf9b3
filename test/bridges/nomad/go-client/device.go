package main

// device: what Nomad's device manager does with a device plugin. It launches and configures the
// plugin (PluginInfo, ConfigSchema, SetConfig), keeps its Fingerprint stream open for the
// plugin's lifetime (a stream that ends loses the plugin for good), reserves devices it picked
// by DetectedDevice.ID, and reads Stats at its collection_interval. Then a device turns
// unhealthy (-scenario's sick file is made world-writable, as a real device fails under a
// running plugin): the change must come on the same open stream, and go when it is repaired.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	basepb "taskhost.test/nomadproto/base"
	devpb "taskhost.test/nomadproto/device"
)

func init() {
	register("device", Subcommand{
		Usage: "device -scenario JSON -- <plugin command>",
		Flags: func(fs *flag.FlagSet) func(s *Session) (interface{}, error) {
			scenario := fs.String("scenario", "", "the plugin's devices and what to expect (JSON, see deviceScenario)")
			return func(s *Session) (interface{}, error) { return runDevice(s, *scenario) }
		},
	})
}

type deviceScenario struct {
	// The plugin's config for SetConfig, in HCL names.
	Config json.RawMessage `json:"config"`
	// The device group: vendor, device_type, device_name, and its devices' ids, all healthy.
	Group struct {
		Vendor  string   `json:"vendor"`
		Type    string   `json:"type"`
		Name    string   `json:"name"`
		Devices []string `json:"devices"`
	} `json:"group"`
	Reserve struct {
		IDs    []string                 `json:"ids"`
		Envs   map[string]string        `json:"envs"`
		Mounts []map[string]interface{} `json:"mounts"`
	} `json:"reserve"`
	// Stats' collection_interval.
	StatsIntervalMs int64 `json:"statsIntervalMs"`
	// A device to make unhealthy: chmod its file to mode, then back to repairedMode.
	Sick struct {
		ID           string      `json:"id"`
		File         string      `json:"file"`
		Mode         os.FileMode `json:"mode"`
		RepairedMode os.FileMode `json:"repairedMode"`
	} `json:"sick"`
}

// deviceStream is Nomad's open Fingerprint stream: every message, until it ends.
type deviceStream struct {
	mu       sync.Mutex
	messages []*devpb.FingerprintResponse
	ended    error
}

// wait finds the first message from the from'th on for which cond holds; it and the index after it.
func (d *deviceStream) wait(from int, timeout time.Duration, cond func(*devpb.FingerprintResponse) bool) (*devpb.FingerprintResponse, int) {
	deadline := time.Now().Add(timeout)
	seen := from
	for {
		d.mu.Lock()
		msgs, ended := d.messages[seen:], d.ended
		d.mu.Unlock()
		for _, m := range msgs {
			seen++
			if cond(m) {
				return m, seen
			}
		}
		if ended != nil || time.Now().After(deadline) {
			return nil, seen
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func runDevice(s *Session, scenarioText string) (interface{}, error) {
	var sc deviceScenario
	if err := json.Unmarshal([]byte(scenarioText), &sc); err != nil {
		return nil, fmt.Errorf("-scenario is not a device scenario: %v", err)
	}
	steps := &Steps{}
	p, err := s.Launch()
	if err != nil {
		return steps, err
	}
	if !configureDevice(steps, p, sc.Config) {
		return steps, fmt.Errorf("the plugin could not be configured")
	}
	dev := devpb.NewDevicePluginClient(p.Conn)

	stream := &deviceStream{}
	fp, err := dev.Fingerprint(context.Background(), &devpb.FingerprintRequest{})
	if !steps.Err("fingerprint.open", err, nil, "the stream is open") {
		return steps, nil
	}
	go func() {
		for {
			msg, err := fp.Recv()
			stream.mu.Lock()
			if err != nil {
				stream.ended = err
				stream.mu.Unlock()
				return
			}
			stream.messages = append(stream.messages, msg)
			stream.mu.Unlock()
		}
	}()
	first, next := stream.wait(0, 60*time.Second, func(*devpb.FingerprintResponse) bool { return true })
	steps.Add("fingerprint", first != nil && groupProblem(first, sc, "") == "", groupsValue(first),
		"first message: %s", orOK(groupProblem(first, sc, "")))

	reserve(steps, dev, sc)
	stats(steps, dev, sc)

	// A device fails under the running plugin, then is repaired.
	if err := os.Chmod(sc.Sick.File, sc.Sick.Mode); err != nil {
		return steps, err
	}
	sick, next := stream.wait(next, 60*time.Second, func(m *devpb.FingerprintResponse) bool { return groupProblem(m, sc, sc.Sick.ID) == "" })
	steps.Add("unhealthy", sick != nil, groupsValue(sick), "%s turned unhealthy on the open stream (%d messages so far)", sc.Sick.ID, count(stream))
	if err := os.Chmod(sc.Sick.File, sc.Sick.RepairedMode); err != nil {
		return steps, err
	}
	healed, _ := stream.wait(next, 60*time.Second, func(m *devpb.FingerprintResponse) bool { return groupProblem(m, sc, "") == "" })
	steps.Add("healthy.again", healed != nil, groupsValue(healed), "%s healthy again after the repair", sc.Sick.ID)

	stream.mu.Lock()
	ended := stream.ended
	stream.mu.Unlock()
	steps.Add("fingerprint.stillOpen", ended == nil, nil, "after %d messages the stream has not ended (ended: %v)", count(stream), ended)

	started := time.Now()
	p.Client.Kill()
	graceful := !s.LogContains("plugin failed to exit gracefully")
	steps.Add("kill", p.Client.Exited() && graceful, nil, "Kill: exited %v, gracefully %v, in %s", p.Client.Exited(), graceful, time.Since(started))
	return steps, nil
}

func configureDevice(steps *Steps, p *Plugin, config json.RawMessage) bool {
	if len(config) == 0 {
		config = json.RawMessage("{}")
	}
	base := basepb.NewBasePluginClient(p.Conn)
	ctx, cancel := rpcContext(60 * time.Second)
	defer cancel()
	info, err := base.PluginInfo(ctx, &basepb.PluginInfoRequest{})
	if err == nil && info.GetType() != basepb.PluginType_DEVICE {
		err = fmt.Errorf("type %s, not DEVICE", info.GetType())
	}
	if !steps.Err("pluginInfo", err, nil, fmt.Sprintf("a DEVICE plugin named %q", info.GetName())) {
		return false
	}
	schema, err := base.ConfigSchema(ctx, &basepb.ConfigSchemaRequest{})
	if !steps.Err("configSchema", err, nil, "an hclspec") {
		return false
	}
	packed, err := NomadConfig(schema.GetSpec(), string(config))
	if err == nil {
		_, err = base.SetConfig(ctx, &basepb.SetConfigRequest{MsgpackConfig: packed, PluginApiVersion: "v0.1.0"})
	}
	return steps.Err("setConfig", err, nil, fmt.Sprintf("config %s taken", config))
}

// groupProblem says what in a fingerprint is not as the scenario has it ("" when it is): one
// group, named as expected, its devices by ID, typed attributes, and every device healthy
// but sickID (unhealthy, with a description).
func groupProblem(m *devpb.FingerprintResponse, sc deviceScenario, sickID string) string {
	if m == nil {
		return "no message"
	}
	groups := m.GetDeviceGroup()
	if len(groups) != 1 {
		return fmt.Sprintf("%d device groups, want 1", len(groups))
	}
	g := groups[0]
	if g.GetVendor() != sc.Group.Vendor || g.GetDeviceType() != sc.Group.Type || g.GetDeviceName() != sc.Group.Name {
		return fmt.Sprintf("group %s/%s/%s, want %s/%s/%s", g.GetVendor(), g.GetDeviceType(), g.GetDeviceName(), sc.Group.Vendor, sc.Group.Type, sc.Group.Name)
	}
	ids := []string{}
	for _, d := range g.GetDevices() {
		ids = append(ids, d.GetID())
		sick := d.GetID() == sickID
		if d.GetHealthy() == sick || (sick && d.GetHealthDescription() == "") {
			return fmt.Sprintf("device %s healthy %v (%q)", d.GetID(), d.GetHealthy(), d.GetHealthDescription())
		}
	}
	sort.Strings(ids)
	want := append([]string{}, sc.Group.Devices...)
	sort.Strings(want)
	if !reflect.DeepEqual(ids, want) {
		return fmt.Sprintf("device IDs %v, want %v", ids, want)
	}
	for name, a := range g.GetAttributes() {
		if t, _ := attributeValue(a); t == "" {
			return fmt.Sprintf("attribute %s has no typed value", name)
		}
	}
	return ""
}

func groupsValue(m *devpb.FingerprintResponse) interface{} {
	if m == nil {
		return nil
	}
	out := []interface{}{}
	for _, g := range m.GetDeviceGroup() {
		devices := []interface{}{}
		for _, d := range g.GetDevices() {
			devices = append(devices, map[string]interface{}{"ID": d.GetID(), "healthy": d.GetHealthy(), "health_description": d.GetHealthDescription()})
		}
		attrs := map[string]interface{}{}
		for name, a := range g.GetAttributes() {
			t, v := attributeValue(a)
			attrs[name] = map[string]interface{}{"type": t, "value": v, "unit": a.GetUnit()}
		}
		out = append(out, map[string]interface{}{
			"vendor": g.GetVendor(), "device_type": g.GetDeviceType(), "device_name": g.GetDeviceName(), "devices": devices, "attributes": attrs,
		})
	}
	return out
}

func reserve(steps *Steps, dev devpb.DevicePluginClient, sc deviceScenario) {
	ctx, cancel := rpcContext(60 * time.Second)
	defer cancel()
	res, err := dev.Reserve(ctx, &devpb.ReserveRequest{DeviceIds: sc.Reserve.IDs})
	r := res.GetContainerRes()
	mounts := []map[string]interface{}{}
	for _, m := range r.GetMounts() {
		mounts = append(mounts, map[string]interface{}{"task_path": m.GetTaskPath(), "host_path": m.GetHostPath(), "read_only": m.GetReadOnly()})
	}
	got := map[string]interface{}{"envs": r.GetEnvs(), "mounts": mounts, "devices": len(r.GetDevices())}
	if err == nil {
		wantMounts, _ := json.Marshal(sc.Reserve.Mounts)
		gotMounts, _ := json.Marshal(mounts)
		if !reflect.DeepEqual(r.GetEnvs(), sc.Reserve.Envs) || string(wantMounts) != string(gotMounts) {
			err = fmt.Errorf("envs %v mounts %s, want envs %v mounts %s", r.GetEnvs(), gotMounts, sc.Reserve.Envs, wantMounts)
		}
	}
	steps.Err("reserve", err, got, fmt.Sprintf("%v: envs %v, %d mount(s)", sc.Reserve.IDs, r.GetEnvs(), len(mounts)))
	_, err = dev.Reserve(ctx, &devpb.ReserveRequest{DeviceIds: []string{"no-such-device"}})
	steps.Add("reserve.unknown", status.Code(err) == codes.NotFound, nil, "an id the plugin does not report: %v", err)
}

// stats reads three Stats messages at the scenario's interval: each has the group, every device's
// instance with a timestamp; the samples' timestamps are at least most of an interval apart
// (the plugin follows the interval asked for, not its default).
func stats(steps *Steps, dev devpb.DevicePluginClient, sc deviceScenario) {
	interval := time.Duration(sc.StatsIntervalMs) * time.Millisecond
	ctx, cancel := rpcContext(120 * time.Second)
	defer cancel()
	stream, err := dev.Stats(ctx, &devpb.StatsRequest{CollectionInterval: durationpb.New(interval)})
	stamps := []time.Time{}
	for i := 0; err == nil && i < 3; i++ {
		var msg *devpb.StatsResponse
		if msg, err = stream.Recv(); err != nil {
			break
		}
		groups := msg.GetGroups()
		if len(groups) != 1 || groups[0].GetVendor() != sc.Group.Vendor || groups[0].GetType() != sc.Group.Type || groups[0].GetName() != sc.Group.Name {
			err = fmt.Errorf("message %d has groups %v", i+1, groups)
			break
		}
		var at time.Time
		for _, id := range sc.Group.Devices {
			inst := groups[0].GetInstanceStats()[id]
			switch {
			case inst == nil:
				err = fmt.Errorf("message %d has no stats of device %s", i+1, id)
			case inst.GetTimestamp() == nil || inst.GetTimestamp().AsTime().Unix() <= 0:
				err = fmt.Errorf("message %d: device %s's stats have no timestamp", i+1, id)
			case inst.GetSummary() == nil:
				err = fmt.Errorf("message %d: device %s's stats have no summary", i+1, id)
			default:
				at = inst.GetTimestamp().AsTime()
			}
		}
		stamps = append(stamps, at)
	}
	gaps := []string{}
	for i := 1; err == nil && i < len(stamps); i++ {
		gap := stamps[i].Sub(stamps[i-1])
		gaps = append(gaps, gap.String())
		if gap < interval*8/10 {
			err = fmt.Errorf("samples %s apart, the interval is %s", gap, interval)
		}
	}
	steps.Err("stats", err, gaps, fmt.Sprintf("3 messages at %s, samples %s apart", interval, strings.Join(gaps, ", ")))
}

func count(d *deviceStream) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.messages)
}

func orOK(problem string) string {
	if problem == "" {
		return "as expected"
	}
	return problem
}
