package main

import (
	"path/filepath"
	"regexp"
	"testing"

	"go.uber.org/goleak"

	"github.com/phxgo/phx/examples/internal/testenv"
)

// passRE finds the passed-test count in node:test's spec summary ("ℹ pass 2").
var passRE = regexp.MustCompile(`(?m)^ℹ pass (\d+)$`)

// TestPhoenixJS builds the lobby, starts it on a free port with a fresh
// database, and lets phoenix.js play a game on it (js/game.test.mjs). It
// borrows phoenix.js and ws from the conformance suite's npm install.
func TestPhoenixJS(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs last, after the server is stopped

	root := testenv.ModuleRoot(t)
	testenv.NPMInstall(t, filepath.Join(root, "examples", "conformance", "js"))
	srv := testenv.Start(t, testenv.Build(t, "./examples/lobby"), "-db", filepath.Join(t.TempDir(), "lobby.db"))

	out, ok := testenv.RunNode(t, filepath.Join(root, "examples", "lobby"), []string{"LOBBY_URL=" + srv.URL},
		"--test", "--test-reporter=spec", "js/game.test.mjs")
	if m := passRE.FindStringSubmatch(out); ok && (m == nil || m[1] == "0") {
		t.Errorf("node ran no passing test (summary %q)", m)
	}
	if err := srv.Stop(); err != nil {
		t.Errorf("lobby server: %v", err)
	}
}
