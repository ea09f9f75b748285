package testenv

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is the real sessionmanager service, as its own process.
type Server struct {
	// Port is the gRPC port; it stays the same across Restart.
	Port int
	// HTTPPort is the HTTP/JSON and admin port (/metrics).
	HTTPPort int

	t    testing.TB
	env  []string
	root string
	proc *process
}

// StartServer starts the service on free loopback ports, on the in-memory
// store unless env sets REDIS_HOST (see RedisEnv), and returns once it
// reports SERVING. env overrides any configuration variable. The process is
// killed when the test ends.
func StartServer(t testing.TB, env map[string]string) *Server {
	t.Helper()
	s := &Server{t: t, root: RepoRoot(t), HTTPPort: FreePort(t)}
	if _, err := os.Stat(filepath.Join(s.root, "node_modules", "tsx")); err != nil {
		t.Fatalf("node_modules/tsx is missing: run `npm ci` at the repository's root first")
	}
	s.env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOST=127.0.0.1",
		"PORT=0",
		"HTTP_PORT=" + strconv.Itoa(s.HTTPPort),
		"LOG_LEVEL=info",
		"SHUTDOWN_GRACE=2s",
	}
	for name, value := range env {
		s.env = append(s.env, name+"="+value)
	}
	t.Cleanup(func() {
		if s.proc != nil {
			s.proc.kill()
		}
	})
	s.start()
	return s
}

// RedisEnv is the configuration that puts a server on the given Redis.
func RedisEnv(redis *Redis) map[string]string {
	return map[string]string{"REDIS_HOST": "127.0.0.1", "REDIS_PORT": strconv.Itoa(redis.Port)}
}

// Address is the gRPC address, "127.0.0.1:<port>".
func (s *Server) Address() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// Stop sends SIGTERM (the server drains its calls) and waits for the exit.
func (s *Server) Stop() {
	s.t.Helper()
	s.proc.stop(s.t, syscall.SIGTERM, 15*time.Second)
}

// Kill ends the server at once (SIGKILL), as a crash would.
func (s *Server) Kill() {
	s.t.Helper()
	s.proc.stop(s.t, syscall.SIGKILL, 15*time.Second)
}

// Pause freezes the server (SIGSTOP): connections stay open, nothing answers.
func (s *Server) Pause() {
	s.t.Helper()
	s.proc.signal(s.t, syscall.SIGSTOP)
}

// Resume continues a paused server.
func (s *Server) Resume() {
	s.t.Helper()
	s.proc.signal(s.t, syscall.SIGCONT)
}

// Restart stops the server if it runs and starts a new one on the same ports.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// Running reports whether the server process is there (paused included).
func (s *Server) Running() bool { return s.proc.running() }

// Start starts a stopped server again, on the same ports.
func (s *Server) Start() {
	s.t.Helper()
	if s.proc.running() {
		s.t.Fatalf("the server on port %d is already running", s.Port)
	}
	s.start()
}

// logLine is what the service's JSON logs say about its state.
type logLine struct {
	Msg    string `json:"msg"`
	Port   int    `json:"port"`
	Health string `json:"health"`
	Status string `json:"status"`
}

func (s *Server) start() {
	s.t.Helper()
	env := append([]string{}, s.env...)
	if s.Port != 0 {
		env = append(env, "PORT="+strconv.Itoa(s.Port))
	}
	cmd := exec.Command("node", "--import", "tsx", filepath.Join("src", "main.ts"))
	cmd.Dir = s.root
	cmd.Env = env
	listening := make(chan int, 1)
	serving := make(chan struct{})
	var serve sync.Once
	s.proc = startProcess(s.t, "sessionmanager", cmd, func(raw []byte) {
		var line logLine
		if json.Unmarshal(raw, &line) != nil {
			return
		}
		if line.Msg == "sessionmanager listening" {
			select {
			case listening <- line.Port:
			default:
			}
		}
		if (line.Msg == "sessionmanager listening" && line.Health == "SERVING") ||
			(line.Msg == "health changed" && line.Status == "SERVING") {
			serve.Do(func() { close(serving) })
		}
	})
	// The service logs its port and its health in either order.
	timeout := time.After(30 * time.Second)
	port, servingSeen := 0, serving
	for port == 0 || servingSeen != nil {
		select {
		case port = <-listening:
		case <-servingSeen:
			servingSeen = nil
		case <-s.proc.done:
			s.t.Fatalf("the service exited while starting:\n%s", s.proc.Output())
		case <-timeout:
			s.proc.kill()
			s.t.Fatalf("the service did not report SERVING within 30s:\n%s", s.proc.Output())
		}
	}
	s.Port = port
}

var callsLine = regexp.MustCompile(`^sessionmanager_calls_total\{([^}]*)\} (\d+)`)

// CallsServed counts the gRPC calls the server has handled (of one method
// when method is not empty), from its /metrics.
func (s *Server) CallsServed(method string) int {
	s.t.Helper()
	response, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", s.HTTPPort))
	if err != nil {
		s.t.Fatalf("GET /metrics: %v", err)
	}
	defer response.Body.Close()
	total := 0
	scanner := bufio.NewScanner(response.Body)
	for scanner.Scan() {
		match := callsLine.FindStringSubmatch(scanner.Text())
		if match == nil || !strings.Contains(match[1], `transport="grpc"`) {
			continue
		}
		if method != "" && !strings.Contains(match[1], `method="`+method+`"`) {
			continue
		}
		count, _ := strconv.Atoi(match[2])
		total += count
	}
	return total
}
