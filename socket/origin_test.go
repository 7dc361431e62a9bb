package socket_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phxgo/phx/socket"
)

// These tests complete TestOriginPolicy with the cases that matter against
// cross-site WebSocket hijacking (docs/security.md): the tricks an attacker's
// page can play with its Origin, the Host the default rule compares with, and
// the LongPoll transport, which runs the same check.

// passesOrigin reports whether a connect from origin ("" for none) to host
// gets past the origin check, on the WebSocket or LongPoll endpoint. The
// fixture's Authenticator runs only after the check, and refuses
// token=bad, so no connection is ever opened: a 403 either way, and the
// Authenticator's call count tells the two refusals apart.
func passesOrigin(t *testing.T, f *fixture, transport, host, origin string) bool {
	t.Helper()
	f.mu.Lock()
	before := len(f.auth)
	f.mu.Unlock()
	r := httptest.NewRequest(http.MethodGet, "http://"+host+"/socket/"+transport+"?token=bad&vsn=2.0.0", nil)
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	w := httptest.NewRecorder()
	f.srv.ServeHTTP(w, r)
	if transport == "websocket" {
		require.Equal(t, http.StatusForbidden, w.Code, "origin %q host %q", origin, host)
	} else {
		require.JSONEq(t, `{"status":403}`, w.Body.String(), "origin %q host %q", origin, host)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.auth) > before
}

type originCase struct {
	host, origin string
	allowed      bool
}

func checkOrigins(t *testing.T, f *fixture, cases []originCase) {
	t.Helper()
	for _, tr := range []string{"websocket", "longpoll"} {
		for _, c := range cases {
			host := c.host
			if host == "" {
				host = "app.example.com"
			}
			assert.Equal(t, c.allowed, passesOrigin(t, f, tr, host, c.origin), "%s: origin %q to host %q", tr, c.origin, host)
		}
	}
}

// TestOriginDefaultSameHost pins down the default rule: the Origin's host
// must be the request's Host, whatever the scheme and port; no Origin (not a
// browser) passes; an Origin without a host never does.
func TestOriginDefaultSameHost(t *testing.T) {
	f := newFixture(t, nil, nil)
	checkOrigins(t, f, []originCase{
		{origin: "", allowed: true},
		{origin: "https://app.example.com", allowed: true},
		{origin: "http://app.example.com:8080", allowed: true}, // port not compared (docs/security.md)
		{origin: "HTTPS://APP.EXAMPLE.COM", allowed: true},
		{host: "APP.Example.com:4000", origin: "https://app.example.com", allowed: true},
		{host: "[::1]:4000", origin: "http://[::1]:3000", allowed: true},
		{host: "[::1]", origin: "http://[::1]", allowed: true},
		{host: "127.0.0.1:4000", origin: "http://localhost:4000", allowed: false}, // names are not resolved
		{origin: "null", allowed: false},
		{origin: "file://", allowed: false},
		{origin: "https://evil.example", allowed: false},
		{origin: "https://app.example.com.evil.example", allowed: false},
		{origin: "https://evilapp.example.com", allowed: false},
		{origin: "https://sub.app.example.com", allowed: false}, // subdomains only through AllowedOrigins
		{origin: "https://app.example.com@evil.example", allowed: false},
		{origin: "https://evil.example#@app.example.com", allowed: false},
		{origin: "app.example.com", allowed: false}, // no scheme: no host
		{origin: "http://[::1", allowed: false},     // unparsable
		{origin: "http://%zz", allowed: false},
		{origin: "https://app.example.com.", allowed: false}, // trailing dot is another name for the browser
	})
}

// TestOriginAllowedList covers AllowedOrigins beyond TestOriginPolicy: the
// list replaces the same-host rule, scheme-only entries imply their default
// port, explicit ports must match, and "*." requires a label boundary.
func TestOriginAllowedList(t *testing.T) {
	f := newFixture(t, func(c *socket.Config[user]) {
		c.AllowedOrigins = []string{
			"https://app.example.com",
			"http://localhost:4000",
			"https://*.example.net",
			"//example.org",
			"chrome-extension://abcdefghijklmnop",
		}
	}, nil)
	checkOrigins(t, f, []originCase{
		{origin: "", allowed: true},
		{origin: "https://app.example.com:443", allowed: true},
		{origin: "https://App.Example.Com", allowed: true},
		{host: "evil.example", origin: "https://evil.example", allowed: false}, // the same-host rule is off
		{host: "app.example.com", origin: "http://app.example.com", allowed: false},
		{origin: "http://localhost:4000", allowed: true},
		{origin: "http://localhost", allowed: false},
		{origin: "http://localhost:4001", allowed: false},
		{origin: "https://a.b.example.net", allowed: true},
		{origin: "https://example.net", allowed: true},
		{origin: "http://a.example.net", allowed: false},
		{origin: "https://badexample.net", allowed: false},
		{origin: "https://example.net.evil.example", allowed: false},
		{origin: "http://example.org:1234", allowed: true},
		{origin: "wss://example.org", allowed: true},
		{origin: "https://www.example.org", allowed: false},
		{origin: "chrome-extension://abcdefghijklmnop", allowed: true},
		{origin: "chrome-extension://ponmlkjihgfedcba", allowed: false},
		{origin: "null", allowed: false},
	})
}

// TestOriginCheckFunc: CheckOrigin replaces both other rules, sees the
// parsed Origin, and is never asked about an Origin without a host.
func TestOriginCheckFunc(t *testing.T) {
	var seen []string
	f := newFixture(t, func(c *socket.Config[user]) {
		c.AllowedOrigins = []string{"https://listed.example"} // ignored: CheckOrigin wins
		c.CheckOrigin = func(r *http.Request, origin *url.URL) bool {
			seen = append(seen, origin.String())
			return origin.Hostname() == "checked.example"
		}
	}, nil)
	assert.True(t, passesOrigin(t, f, "websocket", "h.example", "https://checked.example"))
	assert.False(t, passesOrigin(t, f, "websocket", "h.example", "https://listed.example"))
	assert.False(t, passesOrigin(t, f, "websocket", "h.example", "https://h.example"))
	assert.False(t, passesOrigin(t, f, "websocket", "h.example", "null"))
	assert.True(t, passesOrigin(t, f, "websocket", "h.example", ""))
	assert.Equal(t, []string{"https://checked.example", "https://listed.example", "https://h.example"}, seen)
}

// TestOriginSkipCheck accepts everything, including "null": only for APIs
// that authenticate each connect with a token, never with cookies.
func TestOriginSkipCheck(t *testing.T) {
	f := newFixture(t, func(c *socket.Config[user]) { c.SkipOriginCheck = true }, nil)
	checkOrigins(t, f, []originCase{
		{origin: "null", allowed: true},
		{origin: "https://evil.example", allowed: true},
		{origin: "", allowed: true},
	})
}

// TestOriginAllowedListInvalid: entries without a host are programming
// errors, refused at New rather than silently matching nothing.
func TestOriginAllowedListInvalid(t *testing.T) {
	for _, entry := range []string{"example.com", "*.example.com", "", "https://", "http://[::1"} {
		assert.Panics(t, func() {
			newFixture(t, func(c *socket.Config[user]) { c.AllowedOrigins = []string{entry} }, nil)
		}, "%q", entry)
	}
}

// TestOriginEndToEnd checks, over a real handshake, that the Origin the
// check accepted reaches the Authenticator and that a refused one never
// upgrades.
func TestOriginEndToEnd(t *testing.T) {
	f := newFixture(t, func(c *socket.Config[user]) { c.AllowedOrigins = []string{"https://app.example.com"} }, nil)
	c := f.dial(t, "token=alice&vsn=2.0.0", &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://app.example.com"}}})
	c.send(`["1","1","room:a","phx_join",{}]`)
	assert.Contains(t, c.recv(), `"status":"ok"`)
	f.mu.Lock()
	assert.Equal(t, "https://app.example.com", f.auth[len(f.auth)-1].Origin)
	f.mu.Unlock()

	_, resp, err := websocket.Dial(t.Context(), f.url+"?token=alice&vsn=2.0.0", &websocket.DialOptions{
		HTTPHeader: http.Header{"Origin": {"https://evil.example"}},
	})
	require.Error(t, err)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
}
