package main

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/phxgo/phx/presence"
	"github.com/phxgo/phx/socket/protocol"
	"github.com/phxgo/phx/socket/pubsub"
)

// The ref check names the metas on which List and the diffs disagree: here
// a key that rejoined, whose new ref the diffs hold while List still has
// the old one.
func TestDiffCounterNamesMismatchedRefs(t *testing.T) {
	c := &diffCounter{refs: make(map[refKey]string)}
	diff := func(joins, leaves string) {
		c.Deliver(&pubsub.Message{Topic: "presence:0", Event: presence.EventDiff,
			Payload: protocol.JSONPayload([]byte(`{"joins":` + joins + `,"leaves":` + leaves + `}`))})
	}
	diff(`{"a":{"metas":[{"phx_ref":"r1"}]},"b":{"metas":[{"phx_ref":"r2"}]}}`, `{}`)
	diff(`{"a":{"metas":[{"phx_ref":"r3"}]}}`, `{"a":{"metas":[{"phx_ref":"r1"}]}}`)
	metas, _ := c.get()
	assert.Equal(t, 2, metas)

	agree := map[string]map[string]presence.Entry{"presence:0": {
		"a": {Metas: []map[string]any{{"phx_ref": "r3"}}},
		"b": {Metas: []map[string]any{{"phx_ref": "r2"}}},
	}}
	assert.Empty(t, c.mismatch(agree))
	stale := map[string]map[string]presence.Entry{"presence:0": {
		"a": {Metas: []map[string]any{{"phx_ref": "r1"}}},
		"b": {Metas: []map[string]any{{"phx_ref": "r2"}}},
	}}
	assert.ElementsMatch(t, []string{
		"listed, not in diffs: presence:0 a ref r1",
		"in diffs, not listed: presence:0 a ref r3",
	}, c.mismatch(stale))
}
