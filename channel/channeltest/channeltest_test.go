package channeltest_test

import (
	"testing"
	"time"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/channel/channeltest"
)

type echo struct{}

func (echo) Join(*channel.Context[string], channel.Payload) (channel.Result, error) {
	return channel.OK(nil), nil
}

func (echo) HandleIn(c *channel.Context[string], event string, p channel.Payload) (channel.Result, error) {
	return channel.OK(map[string]string{"who": c.Assigns(), "event": event}), nil
}

func TestAssertions(t *testing.T) {
	t.Parallel()
	router := channel.NewRouter[string]()
	router.Handle("echo:*", func() channel.Handler[string] { return echo{} })
	s := channeltest.New(t, router, "bob")
	ch := s.Join("echo:1", nil).AssertOK()
	ref := ch.Push("ping", nil)
	ch.AssertReply(ref, "ok")
	ch.RefuteReply(ref, 20*time.Millisecond)
	s.Join("nope", nil).AssertError()
	ch.Leave()
}
