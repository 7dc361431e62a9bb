// Package pubsubtest runs real brokers for the adapter tests and holds the
// test suite and benchmark every cluster adapter must pass.
package pubsubtest

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// Server is a broker process listening on a loopback port that a test owns.
// Kill and Restart let a test simulate an outage; the port stays the same.
type Server struct {
	t      testing.TB
	name   string
	bin    string
	args   []string
	Port   int
	Addr   string // 127.0.0.1:Port
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartRedis starts redis-server without persistence on a free port and
// kills it when the test ends.
func StartRedis(t testing.TB) *Server {
	port := freePort(t)
	p := strconv.Itoa(port)
	return start(t, "redis-server", "redis-server", port,
		"--port", p, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
}

// StartNATS starts nats-server on a free port and kills it when the test ends.
func StartNATS(t testing.TB) *Server {
	port := freePort(t)
	return start(t, "nats-server", "nats-server", port, "-a", "127.0.0.1", "-p", strconv.Itoa(port))
}

// StartJetStream starts nats-server with JetStream enabled on a free port,
// storing in a directory of the test's (which survives Kill and Restart, so
// file-backed streams do too), and kills it when the test ends.
func StartJetStream(t testing.TB) *Server {
	port := freePort(t)
	return start(t, "nats-server", "nats-server", port, "-a", "127.0.0.1", "-p", strconv.Itoa(port),
		"-js", "-sd", t.TempDir())
}

func start(t testing.TB, name, pkg string, port int, args ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found in PATH: install the Debian package (apt-get install %s): %v", name, pkg, err)
	}
	s := &Server{t: t, name: name, bin: bin, args: args, Port: port, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	s.Restart()
	t.Cleanup(s.Kill)
	return s
}

// Restart starts the process again (or for the first time) on the same port
// and waits until the port accepts connections.
func (s *Server) Restart() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, s.args...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", s.name, err)
	}
	s.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		_ = cmd.Wait()
		close(exited)
	}(s.cmd, s.exited)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return
		}
		select {
		case <-s.exited:
			s.t.Fatalf("%s exited before accepting on %s", s.name, s.Addr)
		default:
		}
		if time.Now().After(deadline) {
			s.Kill()
			s.t.Fatalf("%s did not accept on %s: %v", s.name, s.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops the process abruptly, as a crash would, and waits for it.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// freePort asks the kernel for a free loopback port. Another process could
// take it before the broker binds it; the broker then fails to start and the
// test says so rather than silently sharing a broker.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// String names the server in failures.
func (s *Server) String() string { return fmt.Sprintf("%s@%s", s.name, s.Addr) }
