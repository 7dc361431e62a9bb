package channel_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/channel/channeltest"
)

// leased is a channel whose join token lasts for the milliseconds given in
// the join params; "refresh" moves the expiry, "forever" removes it.
type leased struct{ reason chan error }

func (l *leased) Join(c *channel.Context[player], p channel.Payload) (channel.Result, error) {
	var params struct {
		TTL int `json:"ttl_ms"`
	}
	if err := p.Decode(&params); err != nil {
		return channel.NoReply(), err
	}
	c.SetExpiry(time.Now().Add(time.Duration(params.TTL) * time.Millisecond))
	return channel.OK(nil), nil
}

func (l *leased) HandleIn(c *channel.Context[player], event string, p channel.Payload) (channel.Result, error) {
	switch event {
	case "refresh":
		var params struct {
			TTL int `json:"ttl_ms"`
		}
		if err := p.Decode(&params); err != nil {
			return channel.NoReply(), err
		}
		c.SetExpiry(time.Now().Add(time.Duration(params.TTL) * time.Millisecond))
	case "forever":
		c.SetExpiry(time.Time{})
	}
	return channel.OK(map[string]bool{"expires": !c.Expiry().IsZero()}), nil
}

func (l *leased) Expired(c *channel.Context[player]) {
	_ = c.Push("system", map[string]string{"status": "error", "message": "token expired"})
}

func (l *leased) Terminate(c *channel.Context[player], reason error) { l.reason <- reason }

func leasedRouter(reasons chan error) *channel.Router[player] {
	r := channel.NewRouter[player]()
	r.Handle("lease:*", func() channel.Handler[player] { return &leased{reason: reasons} })
	return r
}

func TestExpiryClosesChannelAfterExpiredHook(t *testing.T) {
	reasons := make(chan error, 1)
	s := channeltest.New(t, leasedRouter(reasons), player{Name: "ann"})
	ch := s.Join("lease:1", map[string]int{"ttl_ms": 50}).AssertOK()
	p := ch.AssertPush("system")
	var body map[string]string
	require.NoError(t, p.Decode(&body))
	assert.Equal(t, "token expired", body["message"])
	ch.AssertClose()
	select {
	case r := <-reasons:
		assert.ErrorIs(t, r, channel.Expired)
	case <-time.After(2 * time.Second):
		t.Fatal("Terminate did not run")
	}
}

func TestExpiryMovedByRefresh(t *testing.T) {
	reasons := make(chan error, 1)
	s := channeltest.New(t, leasedRouter(reasons), player{Name: "ann"})
	ch := s.Join("lease:1", map[string]int{"ttl_ms": 150}).AssertOK()
	// Refresh three times before each expiry would pass: the channel lives
	// three times past its first expiry.
	for range 3 {
		time.Sleep(75 * time.Millisecond)
		ch.AssertReply(ch.Push("refresh", map[string]int{"ttl_ms": 150}), "ok")
	}
	ch.RefutePush("system", 100*time.Millisecond)
	ch.AssertReply(ch.Push("forever", map[string]any{}), "ok")
	ch.RefutePush("system", 250*time.Millisecond)
	ch.AssertReply(ch.Push("refresh", map[string]int{"ttl_ms": 0}), "ok")
	ch.AssertPush("system")
	ch.AssertClose()
	assert.ErrorIs(t, <-reasons, channel.Expired)
}
