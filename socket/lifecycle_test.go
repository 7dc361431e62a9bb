package socket_test

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

func TestClosedClientsAreForgotten(t *testing.T) {
	f := newFixture(t, nil, nil)
	for i := range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, _, err := websocket.Dial(ctx, f.url+"?token=alice&vsn=2.0.0", nil)
		require.NoError(t, err)
		require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(`["1","1","room:a","phx_join",{}]`)))
		_, _, err = c.Read(ctx)
		require.NoError(t, err)
		if i%2 == 0 {
			c.CloseNow()
		} else {
			c.Close(websocket.StatusNormalClosure, "")
		}
		cancel()
	}
	require.Eventually(t, func() bool { return f.srv.Connections() == 0 }, 5*time.Second, 10*time.Millisecond)
}
