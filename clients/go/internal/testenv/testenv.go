// Package testenv starts what the Go client's tests run against: throwaway
// redis-server processes and the real sessionmanager service (the repository's
// src/main.ts through tsx, as the TypeScript tests spawn it), each on free
// loopback ports, stopped when the test ends. Readiness is polled, never slept for.
package testenv

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FreePort returns a loopback port that was free a moment ago. It is never
// 6379, where this machine may run a Redis that tests must not touch.
func FreePort(t testing.TB) int {
	t.Helper()
	for {
		listener, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("no free loopback port: %v", err)
		}
		port := listener.Addr().(*net.TCPAddr).Port
		listener.Close()
		if port != 6379 {
			return port
		}
	}
}

// WaitFor polls check every 25ms until it returns true, and fails the test
// after timeout.
func WaitFor(t testing.TB, what string, timeout time.Duration, check func() bool) {
	t.Helper()
	if err := poll(timeout, check); err != nil {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

var errTimedOut = fmt.Errorf("timed out")

func poll(timeout time.Duration, check func() bool) error {
	deadline := time.Now().Add(timeout)
	for !check() {
		if time.Now().After(deadline) {
			return errTimedOut
		}
		time.Sleep(25 * time.Millisecond)
	}
	return nil
}

// RepoRoot is the repository's root: the nearest parent of the working
// directory (with symlinks resolved: go.sh runs tests from a GOPATH link)
// that holds src/main.ts and package.json.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err == nil {
		dir, err = filepath.EvalSymlinks(dir)
	}
	if err != nil {
		t.Fatalf("cannot read the working directory: %v", err)
	}
	for {
		if isFile(filepath.Join(dir, "src", "main.ts")) && isFile(filepath.Join(dir, "package.json")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no sessionmanager repository (src/main.ts) above the working directory")
		}
		dir = parent
	}
}

func isFile(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular()
}
