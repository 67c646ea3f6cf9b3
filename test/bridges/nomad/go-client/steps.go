package main

// The driver and device checks report a list of steps, each passed or failed with a message
// saying what was seen, so a failure in the TypeScript test reads as what went wrong.

import (
	"context"
	"fmt"
	"time"
)

// Step is one check's outcome.
type Step struct {
	Name    string      `json:"name"`
	Pass    bool        `json:"pass"`
	Message string      `json:"message"`
	Value   interface{} `json:"value,omitempty"`
}

// Steps collects the outcomes in order.
type Steps struct {
	List []Step `json:"checks"`
}

// Add records a step; the message is formatted with args.
func (s *Steps) Add(name string, pass bool, value interface{}, format string, args ...interface{}) bool {
	s.List = append(s.List, Step{Name: name, Pass: pass, Message: fmt.Sprintf(format, args...), Value: value})
	return pass
}

// Failed is the names of the steps that failed.
func (s *Steps) Failed() []string {
	names := []string{}
	for _, st := range s.List {
		if !st.Pass {
			names = append(names, st.Name)
		}
	}
	return names
}

// Err records a step that failed with err, or passed with ok as its message; whether it passed.
func (s *Steps) Err(name string, err error, value interface{}, ok string) bool {
	if err != nil {
		return s.Add(name, false, value, "%s", describe(err))
	}
	return s.Add(name, true, value, "%s", ok)
}

// describe is an error with its gRPC code, when it has one.
func describe(err error) string {
	c := errCheck(err)
	if c.Code != "" {
		return fmt.Sprintf("%s: %s", c.Code, c.Error)
	}
	return c.Error
}

// rpcContext is the deadline of one call: generous, the machine may be busy.
func rpcContext(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
