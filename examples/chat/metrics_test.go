package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/phxgo/phx/examples/internal/serve"
	"github.com/phxgo/phx/socket/pubsub"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMetricsEndpoint runs the whole chat over HTTP: one refused connect, one
// WebSocket that joins a room and sends a message, then a scrape of /metrics
// in the Prometheus text format.
func TestMetricsEndpoint(t *testing.T) {
	c := newChat(slog.New(slog.DiscardHandler), serve.PhoenixJS{}, pubsub.NewLocal("chat"), nil)
	srv := httptest.NewServer(c.handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, c.shutdown(ctx))
		srv.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/socket/websocket?vsn=2.0.0"

	_, resp, err := websocket.Dial(ctx, wsURL, nil) // no name: refused
	require.Error(t, err)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)

	ws, _, err := websocket.Dial(ctx, wsURL+"&name=alice", nil)
	require.NoError(t, err)
	defer ws.CloseNow()
	ws.SetReadLimit(-1)
	send := func(frame string) { require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte(frame))) }
	// awaitReply reads until the reply to ref, skipping presence pushes.
	awaitReply := func(ref string) string {
		for {
			_, data, err := ws.Read(ctx)
			require.NoError(t, err)
			if s := string(data); strings.HasPrefix(s, `["1","`+ref+`","room:lobby","phx_reply"`) {
				return s
			}
		}
	}
	send(`["1","1","room:lobby","phx_join",{}]`)
	assert.Contains(t, awaitReply("1"), `"status":"ok"`)
	send(`["1","2","room:lobby","new_msg",{"body":"hi"}]`)
	assert.Contains(t, awaitReply("2"), `"status":"ok"`)

	body := scrape(t, srv.URL+"/metrics")
	for _, want := range []string{
		`phx_connections_total{transport="websocket"} 1`,
		`phx_connections{transport="websocket"} 1`,
		`phx_connect_refused_total{reason="auth",transport="websocket"} 1`,
		`phx_messages_in_total{transport="websocket"} 2`,
		"go_goroutines ",
	} {
		assert.Contains(t, body, want)
	}
	assert.Regexp(t, `phx_messages_out_total\{transport="websocket"\} [1-9]`, body)

	// Closing is counted once the server has torn the connection down.
	require.NoError(t, ws.Close(websocket.StatusNormalClosure, ""))
	require.Eventually(t, func() bool {
		return strings.Contains(scrape(t, srv.URL+"/metrics"), `phx_connections{transport="websocket"} 0`)
	}, 5*time.Second, 20*time.Millisecond)
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}
