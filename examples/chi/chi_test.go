package main_test

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/phxgo/phx/examples/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var passRE = regexp.MustCompile(`(?m)^ℹ pass (\d+)`)

// TestMountedUnderChi runs js/mount/mount.test.mjs: phoenix.js 1.7.23, 1.7.21 and 1.8.16 over
// WebSocket and LongPoll against the socket mounted in a chi sub-router (with RequestID, RealIP,
// Logger and Recoverer) at /realtime/live, and behind http.StripPrefix at /strip/socket.
func TestMountedUnderChi(t *testing.T) {
	js := filepath.Join(testenv.ModuleRoot(t), "examples", "conformance", "js")
	testenv.NPMInstall(t, js)
	srv := testenv.Start(t, testenv.Build(t, "./examples/chi"))
	for _, pkg := range []string{"phoenix17", "phoenix1721", "phoenix18"} {
		t.Run(pkg, func(t *testing.T) {
			out, ok := testenv.RunNode(t, js, []string{
				"PHX_HTTP=" + srv.URL,
				"PHX_MOUNTS=/realtime/live,/strip/socket",
				"PHOENIX_PKG=" + pkg,
			}, "--test", "--test-reporter=spec", "mount/mount.test.mjs")
			if m := passRE.FindStringSubmatch(out); ok && (m == nil || m[1] != "4") {
				t.Errorf("want 4 passing tests (2 mounts x 2 transports), summary %q", m)
			}
		})
	}
	if err := srv.Stop(); err != nil {
		t.Errorf("chi example: %v", err)
	}
	// chi's Logger saw the upgrades and the long polls: the middleware ran in front of the socket.
	log := srv.Output()
	for _, want := range []string{
		`"GET http://` + srv.Addr + `/realtime/live/websocket?`,
		`"GET http://` + srv.Addr + `/realtime/live/longpoll?`,
		`"POST http://` + srv.Addr + `/realtime/live/longpoll?`,
		`"GET http://` + srv.Addr + `/strip/socket/websocket?`,
		`"GET http://` + srv.Addr + `/strip/socket/longpoll?`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("chi's request log has no %s", want)
		}
	}
	if strings.Contains(log, "panic") {
		t.Errorf("a handler panicked behind Recoverer:\n%s", log)
	}
}
