// A Nomad-like client for taskhost's Nomad bridge, built on go-plugin's real client code (the
// code Nomad links): it launches the plugin command given after "--" with Nomad's handshake
// settings, runs the checks of one subcommand and prints one JSON document on stdout.
//
//	nomad-go-client base [flags] -- node bin/taskhost.js nomad serve raw_exec
//
// A subcommand registers itself in init() (see base.go); its checks report what they saw, and
// the TypeScript tests (test/bridges/nomad/*.test.ts) judge it.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// Nomad's handshake (nomad/plugins/base/plugin.go).
var handshake = plugin.HandshakeConfig{
	ProtocolVersion:  2,
	MagicCookieKey:   "NOMAD_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "e4327c2e01eabfd75a8a67adb114fb34a757d57eee7728d857a8cec6e91a7255",
}

// Subcommand runs checks against a session and returns what it saw (any JSON value).
type Subcommand struct {
	Usage string
	Flags func(fs *flag.FlagSet) func(s *Session) (interface{}, error)
}

var subcommands = map[string]Subcommand{}

func register(name string, sc Subcommand) { subcommands[name] = sc }

// rawConn dispenses the gRPC connection itself: the checks make their own service clients.
type rawConn struct{ plugin.NetRPCUnsupportedPlugin }

func (rawConn) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error { return fmt.Errorf("client only") }
func (rawConn) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (interface{}, error) {
	return conn, nil
}

// Plugin is one launched plugin process.
type Plugin struct {
	Client *plugin.Client
	Conn   *grpc.ClientConn
}

// Session holds what every check needs: the plugin command, and the go-plugin client's log.
type Session struct {
	Command []string
	logMu   sync.Mutex
	logBuf  bytes.Buffer
	Logger  hclog.Logger
}

func (s *Session) Write(p []byte) (int, error) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.logBuf.Write(p)
}

// Launch starts a fresh plugin process as Nomad does and connects to it.
func (s *Session) Launch() (*Plugin, error) {
	cmd := exec.Command(s.Command[0], s.Command[1:]...)
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  handshake,
		Plugins:          map[string]plugin.Plugin{"conn": rawConn{}},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           s.Logger,
		StartTimeout:     60 * time.Second,
	})
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("starting the plugin: %v", err)
	}
	raw, err := rpc.Dispense("conn")
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("dispensing: %v", err)
	}
	return &Plugin{Client: client, Conn: raw.(*grpc.ClientConn)}, nil
}

// LogEntry is one line of the go-plugin client's log (hclog JSON).
type LogEntry struct {
	Level   string `json:"level"`
	Module  string `json:"module"`
	Message string `json:"message"`
}

// Log is the client's log so far; lines the plugin wrote on stderr are under the module
// "client.<command base name>", at the level the plugin gave them.
func (s *Session) Log() []LogEntry {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	var out []LogEntry
	sc := bufio.NewScanner(bytes.NewReader(s.logBuf.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var raw map[string]interface{}
		if json.Unmarshal(sc.Bytes(), &raw) != nil {
			continue
		}
		e := LogEntry{}
		e.Level, _ = raw["@level"].(string)
		e.Module, _ = raw["@module"].(string)
		e.Message, _ = raw["@message"].(string)
		out = append(out, e)
	}
	return out
}

// LogContains says whether the client logged a message containing text.
func (s *Session) LogContains(text string) bool {
	for _, e := range s.Log() {
		if strings.Contains(e.Message, text) {
			return true
		}
	}
	return false
}

// Check is one step's outcome: what it saw, or the error it got.
type Check struct {
	Value interface{} `json:"value,omitempty"`
	Error string      `json:"error,omitempty"`
	// Code is the gRPC status code name of Error, when it is one.
	Code string `json:"code,omitempty"`
}

func main() {
	names := make([]string, 0, len(subcommands))
	for n := range subcommands {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(os.Args) < 2 || subcommands[os.Args[1]].Flags == nil {
		fmt.Fprintf(os.Stderr, "usage: %s <%s> [flags] -- <plugin command...>\n", os.Args[0], strings.Join(names, "|"))
		os.Exit(2)
	}
	name := os.Args[1]
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	verbose := fs.Bool("v", false, "copy the go-plugin client's log to stderr")
	run := subcommands[name].Flags(fs)
	_ = fs.Parse(os.Args[2:])
	command := fs.Args()
	if len(command) == 0 {
		fmt.Fprintln(os.Stderr, "the plugin command goes after the flags (after --)")
		os.Exit(2)
	}
	s := &Session{Command: command}
	var out interface{ Write([]byte) (int, error) } = s
	if *verbose {
		out = multiWriter{s, os.Stderr}
	}
	s.Logger = hclog.New(&hclog.LoggerOptions{Name: "client", Level: hclog.Trace, Output: out, JSONFormat: true})
	result, err := run(s)
	// A failed check fails the run too, so a script can stop on the exit status.
	if steps, ok := result.(*Steps); ok && err == nil {
		if failed := steps.Failed(); len(failed) > 0 {
			err = fmt.Errorf("%d check(s) failed: %s", len(failed), strings.Join(failed, ", "))
		}
	}
	doc := map[string]interface{}{"subcommand": name, "result": result, "log": s.Log()}
	if err != nil {
		doc["error"] = err.Error()
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(doc)
	plugin.CleanupClients()
	if err != nil {
		os.Exit(1)
	}
}

type multiWriter []interface{ Write([]byte) (int, error) }

func (m multiWriter) Write(p []byte) (int, error) {
	for _, w := range m {
		_, _ = w.Write(p)
	}
	return len(p), nil
}
