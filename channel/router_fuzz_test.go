package channel_test

import (
	"strings"
	"testing"

	"github.com/phxgo/phx/channel"
)

// nopHandler is the handler of the fuzzed routes; it is never joined.
type nopHandler struct{}

func (nopHandler) Join(*channel.Context[struct{}], channel.Payload) (channel.Result, error) {
	return channel.NoReply(), nil
}

func (nopHandler) HandleIn(*channel.Context[struct{}], string, channel.Payload) (channel.Result, error) {
	return channel.NoReply(), nil
}

// FuzzRouterMatch registers newline-separated patterns and matches a topic
// (client-chosen, so untrusted). Handle must panic exactly on invalid
// patterns, and Match must agree with the documented rule, written here as
// plainly as possible: the first pattern, in order, that is either the topic
// itself or ends in "*" with the rest a prefix of the topic.
func FuzzRouterMatch(f *testing.F) {
	f.Add("room:*\nbench:*", "room:lobby")
	f.Add("room:lobby\nroom:*", "room:lobby")
	f.Add("*", "")
	f.Add("a*b\nroom:*", "room:x")
	f.Add("\nroom:", "room:")
	f.Add("room:**", "room:*")
	f.Add("user:42\nuser:*", "user:4")
	f.Add("é*\n\x00*", "é\x00")
	f.Fuzz(func(t *testing.T, patterns, topic string) {
		r := channel.NewRouter[struct{}]()
		var valid []string
		for i, p := range strings.Split(patterns, "\n") {
			if i == 32 {
				break // enough routes to exercise ordering
			}
			ok := p != "" && !strings.Contains(strings.TrimSuffix(p, "*"), "*")
			if panicked := handle(r, p); panicked == ok {
				t.Fatalf("Handle(%q): panicked=%v, want %v", p, panicked, !ok)
			}
			if ok {
				valid = append(valid, p)
			}
		}
		want, wantOK := "", false
		for _, p := range valid {
			if p == topic || (strings.HasSuffix(p, "*") && strings.HasPrefix(topic, p[:len(p)-1])) {
				want, wantOK = p, true
				break
			}
		}
		got, gotOK := r.Match(topic)
		if got != want || gotOK != wantOK {
			t.Fatalf("Match(%q) = %q, %v; want %q, %v (patterns %q)", topic, got, gotOK, want, wantOK, valid)
		}
	})
}

// handle registers pattern and reports whether Handle panicked.
func handle(r *channel.Router[struct{}], pattern string) (panicked bool) {
	defer func() { panicked = recover() != nil }()
	r.Handle(pattern, func() channel.Handler[struct{}] { return nopHandler{} })
	return false
}
