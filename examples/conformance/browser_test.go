package main_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/phxgo/phx/examples/internal/testenv"
)

// chromiumPath is the Chromium the browser suite drives (Debian's chromium package).
const chromiumPath = "/usr/bin/chromium"

// TestBrowser runs js/browser/browser.test.mjs: the unmodified phoenix.js browser bundle in headless Chromium
// (driven by playwright-core), one page over LongPoll and one over WebSocket in the same room, plus the automatic
// WebSocket-to-LongPoll fallback, against the conformance server. Once per phoenix.js release line (and 1.7.21).
func TestBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the browser suite needs Chromium at %s (apt-get install chromium): %v", chromiumPath, err)
	}
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs last, after the server is stopped

	js := filepath.Join(testenv.ModuleRoot(t), "examples", "conformance", "js")
	testenv.NPMInstall(t, js)
	srv := testenv.StartConformance(t, testenv.BuildConformance(t))

	// phoenix1721 too: its LongPoll differs from 1.7.23's and is what most 1.7 apps in the field run.
	for _, pkg := range []string{"phoenix17", "phoenix1721", "phoenix18"} {
		t.Run(pkg, func(t *testing.T) {
			start := time.Now()
			// Each node test has its own 60 s limit; node exits when they are done (RunNode also bounds the run
			// by the go test deadline).
			out, ok := testenv.RunNode(t, js, []string{
				"PHX_URL=" + srv.SocketURL("/socket"),
				"PHX_HTTP=" + srv.URL,
				"PHOENIX_PKG=" + pkg,
				"CHROMIUM=" + chromiumPath,
			}, "--test", "--test-concurrency=1", "--test-reporter=spec", "browser/browser.test.mjs")
			if m := passRE.FindStringSubmatch(out); ok && (m == nil || m[1] == "0") {
				t.Errorf("node ran no passing test (summary %q)", m)
			}
			t.Logf("%s: %v", pkg, time.Since(start).Round(time.Millisecond))
		})
	}

	if err := srv.Stop(); err != nil {
		t.Errorf("conformance server: %v", err)
	}
}
