package testkit

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Launch is how to start the exporter, or another server that takes
// --web.listen-address and answers GET /-/ready, such as Prometheus.
type Launch struct {
	Binary string   // the program; Start's default is the exporter, Binary(t)
	Args   []string // after --web.listen-address, which Launch chooses
	Env    []string // added to this process's environment
	// Ready reports whether the server on addr is ready; nil wants 200
	// from GET http://addr/-/ready. An exporter behind --web.config.file
	// needs one with its certificate and credentials.
	Ready func(addr string) error
	// Within is how long the server has to be ready; 0 means 10s.
	Within time.Duration
}

// Process is a server that Launch started.
type Process struct {
	Cmd  *exec.Cmd
	Addr string // the loopback address it serves on
	URL  string // "http://" + Addr

	output *SyncBuffer
	done   chan struct{}
	err    error // how it exited, once done is closed
}

// Logs returns what the server has written so far to standard output and
// standard error.
func (p *Process) Logs() string { return p.output.String() }

// Done is closed when the server has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err returns how the server exited (an *exec.ExitError for a status other
// than 0), once Done is closed.
func (p *Process) Err() error { return p.err }

// Stop sends SIGTERM and returns how the server exited.
func (p *Process) Stop() error {
	select {
	case <-p.done:
	default:
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		<-p.done
	}
	return p.err
}

// Kill kills the server and waits for it to exit.
func (p *Process) Kill() {
	_ = p.Cmd.Process.Kill()
	<-p.done
}

// Start runs the server on a free loopback address and waits until it is
// ready. A port taken between its choice and the server's bind costs
// another try.
func (l Launch) Start() (*Process, error) {
	for tries := 1; ; tries++ {
		addr, err := LoopbackAddr()
		if err != nil {
			return nil, err
		}
		p, err := l.start(addr)
		if err == nil || tries == 3 || !strings.Contains(err.Error(), "address already in use") {
			return p, err
		}
	}
}

func (l Launch) start(addr string) (*Process, error) {
	cmd := exec.Command(l.Binary, append([]string{"--web.listen-address=" + addr}, l.Args...)...)
	cmd.Env = append(os.Environ(), l.Env...)
	p := &Process{Cmd: cmd, Addr: addr, URL: "http://" + addr, output: &SyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.output, p.output
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	ready, within := l.Ready, l.Within
	if ready == nil {
		ready = getReady
	}
	if within == 0 {
		within = 10 * time.Second
	}
	deadline := time.Now().Add(within)
	for {
		err := ready(addr)
		if err == nil {
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited before it was ready: %v\n%s", l.Binary, p.err, p.Logs())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Kill()
			return nil, fmt.Errorf("%s was not ready within %s (%v):\n%s", l.Binary, within, err, p.Logs())
		}
	}
}

var readyClient = &http.Client{Timeout: time.Second}

// getReady asks http://addr/-/ready, which answers 200 once a config is loaded.
func getReady(addr string) error {
	resp, err := readyClient.Get("http://" + addr + "/-/ready")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New("/-/ready: " + resp.Status)
	}
	return nil
}

// Start starts the server for t as l says, the exporter Binary(t) unless l
// names another, and kills it when t ends, showing its output if t failed.
func Start(t testing.TB, l Launch) *Process {
	t.Helper()
	if l.Binary == "" {
		l.Binary = Binary(t)
	}
	p, err := l.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(l.Binary), p.Logs())
		}
	})
	return p
}

// SyncBuffer collects what is written to it, such as a process's output
// or a logger's, while it is read from another goroutine.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
