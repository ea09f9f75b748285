package testenv

import (
	"bufio"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Redis is a throwaway redis-server on a free loopback port, owned by one test.
type Redis struct {
	Port int
	proc *process
}

// StartRedis starts a redis-server that keeps nothing on disk, and stops it
// when the test ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is not installed: these tests start their own (apt-get install redis-server)")
	}
	dir := t.TempDir()
	port := FreePort(t)
	cmd := exec.Command("redis-server",
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no")
	r := &Redis{Port: port, proc: startProcess(t, "redis-server", cmd, nil)}
	t.Cleanup(r.proc.kill)
	if err := poll(10*time.Second, func() bool { return !r.proc.running() || answersPing(port) }); err != nil || !r.proc.running() {
		t.Fatalf("redis-server on port %d did not answer PING:\n%s", port, r.proc.Output())
	}
	return r
}

// Pause stops the process (SIGSTOP): its port still accepts connections, but
// nothing answers. Resume undoes it; the test's cleanup does too.
func (r *Redis) Pause(t testing.TB) {
	t.Helper()
	r.proc.signal(t, syscall.SIGSTOP)
	t.Cleanup(func() { r.proc.cmd.Process.Signal(syscall.SIGCONT) })
}

// Resume continues a paused process (SIGCONT).
func (r *Redis) Resume(t testing.TB) {
	t.Helper()
	r.proc.signal(t, syscall.SIGCONT)
}

func answersPing(port int) bool {
	conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 500*time.Millisecond)
	if err != nil {
		return false
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}
