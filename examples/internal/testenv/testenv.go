// Package testenv holds the helpers the example suites share: finding the module root, building
// and starting the conformance server, installing the npm packages of a JavaScript test directory,
// and running node. Every helper fails the test (never skips) when a tool it needs is missing.
package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ModulePath is the module whose root ModuleRoot looks for.
const ModulePath = "github.com/phxgo/phx"

// ModuleRoot returns the root directory of the phx module, searching upwards from the working
// directory (go test runs a package's tests in that package's directory).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("testenv: getwd: %v", err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(data), []byte("module "+ModulePath+"\n")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("testenv: no go.mod for %s above the working directory", ModulePath)
		}
		dir = parent
	}
}

// BuildConformance builds ./examples/conformance into a temporary directory removed after the
// test and returns the binary's path. When the test binary runs with the race detector, the
// server is built with -race too, so a data race in the server makes it exit non-zero on Stop.
func BuildConformance(t testing.TB) string {
	t.Helper()
	return Build(t, "./examples/conformance")
}

// Build builds the main package pkg (a path relative to the module root, e.g.
// "./examples/conformance") and returns the path of the binary.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	args := []string{"build", "-o", bin}
	race := raceEnabled()
	if race {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Dir = ModuleRoot(t)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("testenv: go %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, out)
	}
	t.Logf("testenv: built %s in %v (race=%v)", pkg, time.Since(start).Round(time.Millisecond), race)
	return bin
}

// raceEnabled reports whether the running binary was built with -race.
func raceEnabled() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// Server is a running server process started by Start or StartConformance.
type Server struct {
	// Addr is the address the server listens on, as it printed it (host:port).
	Addr string
	// URL is the HTTP base URL, e.g. http://127.0.0.1:4000.
	URL string

	cmd    *exec.Cmd
	out    *lineBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // the process's exit status; read after done is closed
	stopMu sync.Mutex
	stop   error // result of the first Stop
	halted bool
}

// SocketURL returns the WebSocket endpoint URL of the socket mounted at path, e.g.
// SocketURL("/socket") = ws://127.0.0.1:4000/socket (phoenix.js appends /websocket itself).
func (s *Server) SocketURL(path string) string {
	return "ws://" + s.Addr + path
}

// Output returns everything the server printed so far (stdout and stderr interleaved).
func (s *Server) Output() string { return s.out.String() }

// StartConformance starts the conformance server binary on a free 127.0.0.1 port, with extra
// command-line args, and waits for it to print its "listening on" line.
func StartConformance(t testing.TB, bin string, args ...string) *Server {
	t.Helper()
	return Start(t, bin, args...)
}

// Start runs bin with -addr 127.0.0.1:PORT (a free port) followed by args, and waits up to 30 s
// for a line containing "listening on http://ADDR"; Addr is taken from that line. The process is
// stopped when the test ends if Stop was not called (an unclean exit then fails the test), and
// its output is logged if the test failed.
func Start(t testing.TB, bin string, args ...string) *Server {
	t.Helper()
	addr := FreeAddr(t)
	s := &Server{out: newLineBuffer("listening on http://"), done: make(chan struct{})}
	s.cmd = exec.Command(bin, append([]string{"-addr", addr}, args...)...)
	s.cmd.Stdout = s.out
	s.cmd.Stderr = s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("testenv: start %s: %v", bin, err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.stopMu.Lock()
		halted := s.halted
		s.stopMu.Unlock()
		if !halted {
			if err := s.Stop(); err != nil {
				t.Errorf("testenv: %v", err)
			}
		}
		if t.Failed() {
			t.Logf("testenv: output of %s:\n%s", filepath.Base(bin), s.Output())
		}
	})

	select {
	case s.Addr = <-s.out.found:
		s.URL = "http://" + s.Addr
		return s
	case <-s.done:
		t.Fatalf("testenv: %s exited before listening (%v):\n%s", filepath.Base(bin), s.err, s.Output())
	case <-time.After(30 * time.Second):
		t.Fatalf("testenv: %s printed no \"listening on\" line within 30 s:\n%s", filepath.Base(bin), s.Output())
	}
	return nil
}

// Stop sends SIGTERM and waits up to 5 s for the process to exit; it returns an error if the
// process had to be killed or exited with a non-zero status (a graceful shutdown exits 0).
// Later calls return the first call's result.
func (s *Server) Stop() error {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	if s.halted {
		return s.stop
	}
	s.halted = true
	select {
	case <-s.done:
		s.stop = fmt.Errorf("server exited before Stop: %v", s.err)
		return s.stop
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.stop = fmt.Errorf("SIGTERM: %v", err)
	}
	select {
	case <-s.done:
		if s.err != nil && s.stop == nil {
			s.stop = fmt.Errorf("server exit after SIGTERM: %v", s.err)
		}
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		s.stop = errors.New("server did not exit within 5 s of SIGTERM; killed")
	}
	return s.stop
}

// FreeAddr returns a 127.0.0.1:PORT address whose port was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: listen: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("testenv: close listener: %v", err)
	}
	return addr
}

// RequireTool returns the path of the named executable, failing the test if it is not on PATH.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("testenv: %s is required but not on PATH (install Node.js 20+ with npm): %v", name, err)
	}
	return path
}

// NPMInstall makes sure the dependencies listed in dir/package.json are installed in
// dir/node_modules, running `npm ci --no-audit --no-fund` when any is missing. Concurrent calls
// for the same dir, from any process, are serialized with a file lock.
func NPMInstall(t testing.TB, dir string) {
	t.Helper()
	RequireTool(t, "node")
	npm := RequireTool(t, "npm")
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "phx-npm-install.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("testenv: npm lock: %v", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("testenv: npm lock: %v", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // released on close anyway

	missing, err := missingDeps(dir)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if len(missing) == 0 {
		return
	}
	t.Logf("testenv: npm ci in %s (missing %s)", dir, strings.Join(missing, ", "))
	cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: npm ci in %s: %v\n%s", dir, err, out)
	}
	if missing, err = missingDeps(dir); err != nil || len(missing) > 0 {
		t.Fatalf("testenv: after npm ci in %s still missing %v (%v)", dir, missing, err)
	}
}

// missingDeps lists the dependencies of dir/package.json without a node_modules/NAME/package.json.
func missingDeps(dir string) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		return nil, err
	}
	var pkg struct {
		Dependencies    map[string]string `json:"dependencies"`
		DevDependencies map[string]string `json:"devDependencies"`
	}
	if err := json.Unmarshal(data, &pkg); err != nil {
		return nil, fmt.Errorf("%s/package.json: %v", dir, err)
	}
	var missing []string
	for _, deps := range []map[string]string{pkg.Dependencies, pkg.DevDependencies} {
		for name := range deps {
			if _, err := os.Stat(filepath.Join(dir, "node_modules", name, "package.json")); err != nil {
				missing = append(missing, name)
			}
		}
	}
	return missing, nil
}

// RunNode runs `node args...` in dir with env added to the test process's environment. Each
// output line goes to t.Log as it arrives (go test shows it for failed tests and with -v). A
// non-zero exit fails the test with t.Errorf. RunNode returns node's combined output and whether
// it exited 0. The run is bounded by the test's deadline (less a margin) or 10 minutes.
func RunNode(t testing.TB, dir string, env []string, args ...string) (output string, ok bool) {
	t.Helper()
	node := RequireTool(t, "node")
	timeout := 10 * time.Minute
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if deadline, ok := d.Deadline(); ok {
			timeout = time.Until(deadline) - 30*time.Second
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	w := &logWriter{t: t}
	cmd.Stdout = w
	cmd.Stderr = w
	err := cmd.Run()
	w.flush()
	output = w.all.String()
	if err != nil {
		if ctx.Err() != nil {
			t.Errorf("testenv: node %s: timed out after %v", strings.Join(args, " "), timeout.Round(time.Second))
		} else {
			t.Errorf("testenv: node %s (env %s): %v", strings.Join(args, " "), strings.Join(env, " "), err)
		}
		return output, false
	}
	return output, true
}

// logWriter sends complete lines to t.Log and keeps a copy of everything.
type logWriter struct {
	t   testing.TB
	mu  sync.Mutex
	buf []byte
	all bytes.Buffer
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all.Write(p)
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.t.Log(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}

func (w *logWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.t.Log(string(w.buf))
		w.buf = nil
	}
}

// lineBuffer collects a process's output and reports on found the word following the first
// occurrence of marker in a complete line.
type lineBuffer struct {
	marker string
	found  chan string // buffered; receives at most one value

	mu      sync.Mutex
	all     bytes.Buffer
	partial []byte
	matched bool
}

func newLineBuffer(marker string) *lineBuffer {
	return &lineBuffer{marker: marker, found: make(chan string, 1)}
}

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.all.Write(p)
	if b.matched {
		return len(p), nil
	}
	b.partial = append(b.partial, p...)
	for {
		i := bytes.IndexByte(b.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := strings.TrimRight(string(b.partial[:i]), "\r")
		b.partial = b.partial[i+1:]
		if j := strings.Index(line, b.marker); j >= 0 {
			b.matched = true
			b.partial = nil
			b.found <- strings.Fields(line[j+len(b.marker):] + " ")[0]
			return len(p), nil
		}
	}
}

func (b *lineBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.all.String()
}
