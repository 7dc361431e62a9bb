package presence

import (
	"encoding/json"
	"slices"
	"strings"
)

// Replication event names, on the tracker's PubSub topics.
const (
	evHeartbeat        = "heartbeat"
	evTransferReq      = "transfer_req"
	evTransferAck      = "transfer_ack"
	evGracefulPermdown = "graceful_permdown"
)

// replica identifies one run of a tracker: the node name plus a version that
// is new for every start, so that a restarted node is a different replica and
// its predecessor's presences can be dropped at once. Versions are fixed-width
// hex beginning with the start time, so a later start compares greater.
type replica struct {
	Node string `json:"n"`
	Vsn  string `json:"v"`
}

func (r replica) String() string { return r.Node + "/" + r.Vsn }

func compareReplicas(a, b replica) int {
	if c := strings.Compare(a.Node, b.Node); c != 0 {
		return c
	}
	return strings.Compare(a.Vsn, b.Vsn)
}

// wireMsg is the JSON payload of every replication message.
type wireMsg struct {
	From  replica     `json:"from"`
	Clock []wireClock `json:"clock,omitempty"`
	State *wireState  `json:"state,omitempty"`
}

// wireClock is one entry of a version vector.
type wireClock struct {
	R replica `json:"r"`
	C uint64  `json:"c"`
}

// wireState is a delta or a full state: what its sender has observed of some
// replicas (Causal) and which of those observed elements it holds (Values).
// An element the sender observed but does not hold has been removed.
type wireState struct {
	Replicas []replica    `json:"r"`
	Causal   []wireCausal `json:"c"`
	Values   []wireValue  `json:"v,omitempty"`
}

// wireCausal says that the sender has observed the dots (From, Upto] and Dots
// of replica Replicas[I]. A full state has From 0; a delta covers the range of
// the sender's own operations since its last heartbeat plus the older dots it
// removed in the meantime.
type wireCausal struct {
	I    int      `json:"i"`
	From uint64   `json:"f,omitempty"`
	Upto uint64   `json:"u"`
	Dots []uint64 `json:"d,omitempty"`
}

func (c *wireCausal) observed(n uint64, dots map[uint64]struct{}) bool {
	if n > c.From && n <= c.Upto {
		return true
	}
	_, ok := dots[n]
	return ok
}

// wireValue is one element: the dot (Replicas[I], C) and its presence.
type wireValue struct {
	I     int             `json:"i"`
	C     uint64          `json:"c"`
	Topic string          `json:"t"`
	Key   string          `json:"k"`
	Ref   string          `json:"p"`
	At    int64           `json:"a"`
	Meta  json.RawMessage `json:"m"`
}

func wireValueOf(i int, e *element) wireValue {
	return wireValue{I: i, C: e.dot.c, Topic: e.topic, Key: e.key, Ref: e.ref, At: e.at, Meta: e.raw}
}

func clockMap(cs []wireClock) map[replica]uint64 {
	m := make(map[replica]uint64, len(cs))
	for _, c := range cs {
		m[c.R] = c.C
	}
	return m
}

func clockList(m map[replica]uint64) []wireClock {
	cs := make([]wireClock, 0, len(m))
	for r, c := range m {
		cs = append(cs, wireClock{R: r, C: c})
	}
	slices.SortFunc(cs, func(a, b wireClock) int { return compareReplicas(a.R, b.R) })
	return cs
}
