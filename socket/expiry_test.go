package socket_test

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/socket"
)

// A connection whose token expires is closed with 4001 and its channels end
// with channel.Expired; one without an expiry is untouched.
func TestConnectionExpiry(t *testing.T) {
	reasons := make(chan error, 2)
	f := newFixture(t, func(c *socket.Config[user]) {
		inner := c.Authenticator
		c.Authenticator = socket.AuthenticatorFunc[user](func(ctx context.Context, req *socket.ConnectRequest) (user, error) {
			if req.Params.Get("ttl") == "short" {
				req.SetExpiry(time.Now().Add(200 * time.Millisecond))
			}
			return inner.Authenticate(ctx, req)
		})
	}, func() *room { return &room{terminated: reasons} })
	short := f.dial(t, "token=alice&vsn=2.0.0&ttl=short", nil)
	long := f.dial(t, "token=bob&vsn=2.0.0", nil)
	short.send(`["1","1","room:a","phx_join",{}]`)
	long.send(`["1","1","room:a","phx_join",{}]`)
	assert.Contains(t, short.recv(), `"status":"ok"`)
	assert.Contains(t, long.recv(), `"status":"ok"`)
	assert.Equal(t, websocket.StatusCode(4001), short.closeCode())
	select {
	case r := <-reasons:
		assert.ErrorIs(t, r, channel.Expired)
	case <-time.After(2 * time.Second):
		t.Fatal("Terminate did not run")
	}
	long.send(`["1","2","room:a","echo",{"still":"here"}]`)
	assert.Contains(t, long.recv(), `"still":"here"`)
}
