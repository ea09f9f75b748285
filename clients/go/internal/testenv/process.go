package testenv

import (
	"bufio"
	"bytes"
	"io"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// process is a child process the test owns: its output is kept for failure
// messages, and it dies with the test binary (see procattr_linux.go).
type process struct {
	name   string
	cmd    *exec.Cmd
	done   chan struct{}
	mu     sync.Mutex
	output bytes.Buffer
}

// startProcess runs cmd; each line it writes to stdout goes to onLine (from
// one goroutine) until the process exits. stdout is read to the end, so the
// process never blocks or fails writing to it.
func startProcess(t testing.TB, name string, cmd *exec.Cmd, onLine func(line []byte)) *process {
	t.Helper()
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	cmd.SysProcAttr = childProcAttr()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	cmd.Stderr = writerFunc(p.record)
	if err := cmd.Start(); err != nil {
		t.Fatalf("cannot start %s: %v", name, err)
	}
	go func() {
		scanner := bufio.NewScanner(stdout)
		scanner.Buffer(make([]byte, 64*1024), 1024*1024)
		for scanner.Scan() {
			p.record(append(scanner.Bytes(), '\n'))
			if onLine != nil {
				onLine(scanner.Bytes())
			}
		}
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		close(p.done)
	}()
	return p
}

type writerFunc func([]byte)

func (w writerFunc) Write(b []byte) (int, error) { w(b); return len(b), nil }

func (p *process) record(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.output.Write(b)
}

// Output is everything the process wrote so far, stdout and stderr.
func (p *process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

func (p *process) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *process) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && p.running() {
		t.Fatalf("cannot send %s to %s: %v", sig, p.name, err)
	}
}

// stop sends sig and waits for the exit; a process still there after
// `grace` is killed, and the test fails.
func (p *process) stop(t testing.TB, sig syscall.Signal, grace time.Duration) {
	t.Helper()
	if !p.running() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGCONT)
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s did not exit within %s of %s:\n%s", p.name, grace, sig, p.Output())
	}
}

// kill ends the process at once, for cleanups.
func (p *process) kill() {
	if p.running() {
		p.cmd.Process.Kill()
		<-p.done
	}
}
