package main

// What Nomad's logmon does with a task's stdout and stderr: the client makes two FIFOs with
// mkfifo before StartTask, and logmon opens each for reading (a blocking open, which returns
// when the plugin opens its end for writing) and reads it to EOF, once.

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// FifoReader is one FIFO being read as logmon reads it.
type FifoReader struct {
	Path string
	mu   sync.Mutex
	buf  bytes.Buffer
	eof  bool
	err  error
}

// NewFifoReader makes the FIFO and starts reading it.
func NewFifoReader(path string) (*FifoReader, error) {
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		return nil, fmt.Errorf("mkfifo %s: %v", path, err)
	}
	r := &FifoReader{Path: path}
	go r.run()
	return r, nil
}

func (r *FifoReader) run() {
	f, err := os.OpenFile(r.Path, os.O_RDONLY, os.ModeNamedPipe)
	if err != nil {
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
		return
	}
	defer f.Close()
	chunk := make([]byte, 32*1024)
	for {
		n, err := f.Read(chunk)
		r.mu.Lock()
		r.buf.Write(chunk[:n])
		if err != nil {
			if err == io.EOF {
				r.eof = true
			} else {
				r.err = err
			}
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
	}
}

// State is what was read so far, and whether the writer has closed its end.
func (r *FifoReader) State() (text string, eof bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String(), r.eof, r.err
}

// Len is how many bytes were read so far.
func (r *FifoReader) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Len()
}

// WaitFor polls until cond holds on what was read (true), or the timeout passes (false).
func (r *FifoReader) WaitFor(timeout time.Duration, cond func(text string, eof bool) bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		text, eof, err := r.State()
		if cond(text, eof) {
			return true
		}
		if err != nil || eof || time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitEOF waits for the writer to close the FIFO; the text read and whether it did.
func (r *FifoReader) WaitEOF(timeout time.Duration) (string, bool) {
	r.WaitFor(timeout, func(_ string, eof bool) bool { return eof })
	text, eof, _ := r.State()
	return text, eof
}

// WaitText waits until the text read contains want (any byte when want is empty).
func (r *FifoReader) WaitText(timeout time.Duration, want string) bool {
	return r.WaitFor(timeout, func(text string, _ bool) bool {
		if want == "" {
			return len(text) > 0
		}
		return strings.Contains(text, want)
	})
}
