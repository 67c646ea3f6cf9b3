package main

// base: what Nomad's plugin loader does with every external plugin: the handshake, a health
// ping, PluginInfo, ConfigSchema, SetConfig (a good config and a bad one), then Kill, which
// asks the plugin to exit through GRPCController/Shutdown and SIGKILLs it after 2 s if not.

import (
	"context"
	"flag"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	basepb "taskhost.test/nomadproto/base"
)

func init() {
	register("base", Subcommand{
		Usage: "base [-good JSON] [-bad JSON] -- <plugin command>",
		Flags: func(fs *flag.FlagSet) func(s *Session) (interface{}, error) {
			good := fs.String("good", "", "a config (JSON, in HCL names) SetConfig must accept")
			bad := fs.String("bad", "", "a config SetConfig must refuse")
			return func(s *Session) (interface{}, error) { return runBase(s, *good, *bad) }
		},
	})
}

func runBase(s *Session, good, bad string) (interface{}, error) {
	p, err := s.Launch()
	if err != nil {
		return nil, err
	}
	out := map[string]interface{}{
		"protocol":        string(p.Client.Protocol()),
		"protocolVersion": p.Client.NegotiatedVersion(),
	}
	rpc, _ := p.Client.Client()
	out["ping"] = errCheck(rpc.Ping())

	base := basepb.NewBasePluginClient(p.Conn)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if info, err := base.PluginInfo(ctx, &basepb.PluginInfoRequest{}); err != nil {
		out["pluginInfo"] = errCheck(err)
	} else {
		out["pluginInfo"] = Check{Value: map[string]interface{}{
			"type": info.GetType().String(), "apiVersions": info.GetPluginApiVersions(),
			"version": info.GetPluginVersion(), "name": info.GetName(),
		}}
	}
	if schema, err := base.ConfigSchema(ctx, &basepb.ConfigSchemaRequest{}); err != nil {
		out["configSchema"] = errCheck(err)
	} else {
		text, _ := protojson.MarshalOptions{UseProtoNames: true}.Marshal(schema.GetSpec())
		out["configSchema"] = Check{Value: rawJSON(text)}
	}
	for _, step := range [][2]string{{"setConfigGood", good}, {"setConfigBad", bad}} {
		name, cfg := step[0], step[1]
		if cfg == "" {
			continue
		}
		packed, err := Msgpack(cfg)
		if err != nil {
			return out, err
		}
		_, err = base.SetConfig(ctx, &basepb.SetConfigRequest{MsgpackConfig: packed, PluginApiVersion: "v0.1.0"})
		out[name] = errCheck(err)
	}

	started := time.Now()
	p.Client.Kill()
	out["kill"] = map[string]interface{}{
		"exited":   p.Client.Exited(),
		"graceful": !s.LogContains("plugin failed to exit gracefully"),
		"ms":       time.Since(started).Milliseconds(),
	}
	return out, nil
}

// errCheck is an empty Check for no error, else the error and its gRPC code.
func errCheck(err error) Check {
	if err == nil {
		return Check{}
	}
	c := Check{Error: err.Error()}
	if st, ok := status.FromError(err); ok {
		c.Code = st.Code().String()
		c.Error = st.Message()
	}
	return c
}

type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }
