package socket_test

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phxgo/phx/socket"
)

// Connects beyond MaxPendingConnects are refused at once, before the
// Authenticator, with the statuses phoenix.js retries; the slots free up as
// the pending connects finish.
func TestMaxPendingConnects(t *testing.T) {
	gate := make(chan struct{})
	entered := make(chan struct{}, 10)
	var calls sync.Map
	f := newFixture(t, func(c *socket.Config[user]) {
		c.MaxPendingConnects = 2
		inner := c.Authenticator
		c.Authenticator = socket.AuthenticatorFunc[user](func(ctx context.Context, req *socket.ConnectRequest) (user, error) {
			calls.Store(req.Params.Get("token"), true)
			if req.Params.Get("token") == "slow" {
				entered <- struct{}{}
				select {
				case <-gate:
				case <-ctx.Done():
				}
			}
			return inner.Authenticate(ctx, req)
		})
	}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	slow := make(chan error, 2)
	for range 2 {
		go func() {
			ws, _, err := websocket.Dial(ctx, f.url+"?token=slow&vsn=2.0.0", nil)
			if err == nil {
				ws.CloseNow()
			}
			slow <- err
		}()
	}
	<-entered
	<-entered

	// A third WebSocket connect: 503, Retry-After, no Authenticator call.
	_, resp, err := websocket.Dial(ctx, f.url+"?token=bob&vsn=2.0.0", nil)
	require.Error(t, err)
	require.NotNil(t, resp)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	_, called := calls.Load("bob")
	assert.False(t, called, "the Authenticator ran for a refused connect")

	// LongPoll: {"status":500}, which phoenix.js retries (403 would end it).
	lp, err := http.Get(f.http.URL + "/socket/longpoll?token=carol&vsn=2.0.0")
	require.NoError(t, err)
	body, _ := io.ReadAll(lp.Body)
	lp.Body.Close()
	assert.JSONEq(t, `{"status":500}`, string(body))

	close(gate)
	require.NoError(t, <-slow)
	require.NoError(t, <-slow)
	// Both slots are free again.
	ws, _, err := websocket.Dial(ctx, f.url+"?token=bob&vsn=2.0.0", nil)
	require.NoError(t, err)
	ws.CloseNow()
	lp, err = http.Get(f.http.URL + "/socket/longpoll?token=carol&vsn=2.0.0")
	require.NoError(t, err)
	body, _ = io.ReadAll(lp.Body)
	lp.Body.Close()
	assert.Contains(t, string(body), `"status":410`)
}
