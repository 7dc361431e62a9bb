package main_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/phxgo/phx/examples/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// secret is the example's development JWT secret, which the JS tests sign with.
const secret = "phx-supabase-example-jwt-secret-not-for-production"

var passRE = regexp.MustCompile(`(?m)^ℹ pass (\d+)`)

// TestRealtimeJS runs js/supabase/realtime.test.mjs, the unmodified @supabase/realtime-js in Node,
// against one node, then against two nodes sharing a real redis-server; and js/supabase/browser.test.mjs,
// the example's page in headless Chromium.
func TestRealtimeJS(t *testing.T) {
	js := filepath.Join(testenv.ModuleRoot(t), "examples", "conformance", "js")
	testenv.NPMInstall(t, js)
	bin := testenv.Build(t, "./examples/supabase")
	run := func(t *testing.T, want string, env []string, file string) {
		out, ok := testenv.RunNode(t, js, append(env, "SUPA_SECRET="+secret), "--test", "--test-reporter=spec", file)
		if m := passRE.FindStringSubmatch(out); ok && (m == nil || m[1] != want) {
			t.Errorf("want %s passing tests, summary %q", want, m)
		}
	}

	t.Run("one node", func(t *testing.T) {
		srv := testenv.Start(t, bin)
		run(t, "7", []string{"SUPA_URL=" + srv.URL}, "supabase/realtime.test.mjs")
		if _, err := os.Stat("/usr/bin/chromium"); err != nil {
			t.Fatalf("the browser check needs /usr/bin/chromium: %v", err)
		}
		run(t, "1", []string{"SUPA_URL=" + srv.URL, "CHROMIUM=/usr/bin/chromium"}, "supabase/browser.test.mjs")
		if err := srv.Stop(); err != nil {
			t.Errorf("supabase example: %v", err)
		}
	})

	t.Run("two nodes over redis", func(t *testing.T) {
		redis := startRedis(t)
		a := testenv.Start(t, bin, "-node", "a", "-pubsub", "redis://"+redis)
		b := testenv.Start(t, bin, "-node", "b", "-pubsub", "redis://"+redis)
		run(t, "8", []string{"SUPA_URL=" + a.URL, "SUPA_URL2=" + b.URL}, "supabase/realtime.test.mjs")
		for _, s := range []*testenv.Server{a, b} {
			if err := s.Stop(); err != nil {
				t.Errorf("supabase node: %v", err)
			}
		}
	})
}

// startRedis runs a redis-server on a free loopback port for the test.
func startRedis(t *testing.T) string {
	t.Helper()
	bin := testenv.RequireTool(t, "redis-server")
	addr := testenv.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatalf("redis-server: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not listen on %s", addr)
		}
	}
}
