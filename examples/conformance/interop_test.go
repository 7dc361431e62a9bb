package main_test

import (
	"path/filepath"
	"regexp"
	"testing"

	"go.uber.org/goleak"

	"github.com/phxgo/phx/examples/internal/testenv"
)

// passRE finds the passed-test count in node:test's spec summary ("ℹ pass 27").
var passRE = regexp.MustCompile(`(?m)^ℹ pass (\d+)$`)

// TestInterop runs the real phoenix.js suite (js/test, node:test) against the conformance server,
// once for each phoenix.js release line and serializer version. Rows that do not apply to a
// combination (binary frames on V1, authToken on 1.7) are skipped inside node.
func TestInterop(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs last, after the server is stopped

	js := filepath.Join(testenv.ModuleRoot(t), "examples", "conformance", "js")
	testenv.NPMInstall(t, js)
	srv := testenv.StartConformance(t, testenv.BuildConformance(t))

	for _, pkg := range []string{"phoenix17", "phoenix18"} {
		for _, vsn := range []string{"2.0.0", "1.0.0"} {
			t.Run(pkg+"_vsn"+vsn, func(t *testing.T) {
				out, ok := testenv.RunNode(t, js, []string{
					"PHX_URL=" + srv.SocketURL("/socket"),
					"PHX_HTTP=" + srv.URL,
					"PHOENIX_PKG=" + pkg,
					"PHX_VSN=" + vsn,
				}, "--test", "--test-concurrency=1", "--test-reporter=spec", "test/")
				if m := passRE.FindStringSubmatch(out); ok && (m == nil || m[1] == "0") {
					t.Errorf("node ran no passing test (summary %q)", m)
				}
			})
		}
	}

	if err := srv.Stop(); err != nil {
		t.Errorf("conformance server: %v", err)
	}
}
