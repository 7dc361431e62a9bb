package presence

import (
	"cmp"
	"math"
	"slices"
	"unicode/utf8"
)

// A full state is one node's view of every presence in the cluster: about
// 130 bytes of JSON per presence, so a node of about 8,000 sockets already sends
// more than NATS's default 1 MB max_payload in a transfer, and a burst of
// joins can do the same to a heartbeat's delta. split cuts such a state into
// messages of at most about max bytes that are each a valid state on their
// own, so the receiver merges them in any order, and losing one costs only a
// later transfer:
//
// A piece of a replica covers a range of its counters (lo, hi]. It says what
// the sender observed of that range (the part of the causal range and the
// dots inside it) and carries every value the sender holds in it. "Observed
// but not held" means removed to the receiver, and within the range that is
// exactly the sender's truth, so a piece never removes what another piece
// carries.

// wireOverhead bounds the JSON of a message around its values and dots: the
// sender's replica, its clock, the replica list and the field names.
const wireOverhead = 1 << 10

// split returns ws itself when a message carrying it and clock is estimated
// to fit in max bytes (or max <= 0), else pieces of it that do. A single
// value larger than max travels alone.
func split(ws *wireState, max int, clock []wireClock) []*wireState {
	if ws == nil || max <= 0 {
		return []*wireState{ws}
	}
	budget := max - wireOverhead
	for _, r := range ws.Replicas {
		budget -= replicaSize(r)
	}
	for _, c := range clock {
		budget -= replicaSize(c.R) + 30 // {"r":…,"c":…},
	}
	if budget < 1 {
		budget = 1
	}
	if stateSize(ws) <= budget {
		return []*wireState{ws}
	}

	byReplica := make([][]wireValue, len(ws.Replicas))
	for _, v := range ws.Values {
		if v.I >= 0 && v.I < len(byReplica) {
			byReplica[v.I] = append(byReplica[v.I], v)
		}
	}
	var out []*wireState
	cur, curSize := &wireState{}, 0
	index := map[int]int{} // ws.Replicas index -> cur.Replicas index
	emit := func() {
		if len(cur.Causal) > 0 || len(cur.Values) > 0 {
			out = append(out, cur)
		}
		cur, curSize = &wireState{}, 0
		clear(index)
	}
	add := func(p piece) {
		if curSize > 0 && curSize+p.size > budget {
			emit()
		}
		j, ok := index[p.i]
		if !ok {
			j = len(cur.Replicas)
			index[p.i] = j
			cur.Replicas = append(cur.Replicas, ws.Replicas[p.i])
		}
		p.cz.I = j
		cur.Causal = append(cur.Causal, p.cz)
		for _, v := range p.values {
			v.I = j
			cur.Values = append(cur.Values, v)
		}
		curSize += p.size
	}
	for _, cz := range ws.Causal {
		if cz.I < 0 || cz.I >= len(ws.Replicas) {
			continue
		}
		for _, p := range pieces(cz, byReplica[cz.I], budget) {
			add(p)
		}
	}
	emit()
	return out
}

// piece is one counter range of one replica.
type piece struct {
	i      int // index in the source state's Replicas
	cz     wireCausal
	values []wireValue
	size   int
}

// pieces cuts one replica's causal entry and values into ranges whose
// estimated size stays within budget, walking dots and values in counter
// order.
func pieces(cz wireCausal, values []wireValue, budget int) []piece {
	// values is split's own slice; cz.Dots belongs to the caller.
	slices.SortFunc(values, func(a, b wireValue) int { return cmp.Compare(a.C, b.C) })
	dots := slices.Clone(cz.Dots)
	slices.Sort(dots)

	var out []piece
	lo := uint64(0)
	p := piece{i: cz.I, size: causalSize}
	var pdots []uint64
	cut := func(hi uint64) {
		p.cz = rangeOf(cz, lo, hi, pdots)
		out = append(out, p)
		lo = hi
		p = piece{i: cz.I, size: causalSize}
		pdots = nil
	}
	vi, di := 0, 0
	last := uint64(0) // counter of the last item in p
	for vi < len(values) || di < len(dots) {
		var c uint64
		var size int
		isValue := di >= len(dots) || (vi < len(values) && values[vi].C <= dots[di])
		if isValue {
			c, size = values[vi].C, valueSize(&values[vi])
		} else {
			c, size = dots[di], dotSize
		}
		// Cut before c, but never between a value and the dot of the same
		// counter (a cloud value): the piece holding the value must be the
		// one observing it.
		if p.size+size > budget && p.size > causalSize && c > last {
			cut(c - 1)
		}
		last = c
		if isValue {
			p.values = append(p.values, values[vi])
			vi++
		} else {
			pdots = append(pdots, dots[di])
			di++
		}
		p.size += size
	}
	cut(math.MaxUint64)
	return out
}

// rangeOf restricts cz to the counters (lo, hi].
func rangeOf(cz wireCausal, lo, hi uint64, dots []uint64) wireCausal {
	from, upto := max(cz.From, lo), min(cz.Upto, hi)
	if upto <= from {
		from, upto = 0, 0 // nothing of the contiguous range in here
	}
	return wireCausal{I: cz.I, From: from, Upto: upto, Dots: dots}
}

// Estimated JSON sizes, never below the real ones: numbers are counted at
// their widest.
const (
	causalSize = 88  // {"i":…,"f":…,"u":…,"d":[]},
	dotSize    = 21  // a uint64 and a comma
	valueSize0 = 104 // {"i":…,"c":…,"t":"","k":"","p":"","a":…,"m":},
)

func valueSize(v *wireValue) int {
	return valueSize0 + jsonStringSize(v.Topic) + jsonStringSize(v.Key) + jsonStringSize(v.Ref) + jsonStringSize(string(v.Meta))
}

func stateSize(ws *wireState) int {
	n := len(ws.Causal) * causalSize
	for _, cz := range ws.Causal {
		n += len(cz.Dots) * dotSize
	}
	for i := range ws.Values {
		n += valueSize(&ws.Values[i])
	}
	return n
}

// replicaSize bounds the JSON of a replica, {"n":"…","v":"…"},.
func replicaSize(r replica) int {
	return 20 + jsonStringSize(r.Node) + jsonStringSize(r.Vsn)
}

// jsonStringSize bounds the length of s in encoding/json's output, quotes
// excluded: control characters, quotes, backslashes and HTML characters are
// escaped, invalid bytes become \ufffd. For raw JSON (a meta), which
// encoding/json re-escapes only for HTML characters and U+2028/9, it is an
// upper bound too.
func jsonStringSize(s string) int {
	n := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			switch {
			case b == '"' || b == '\\' || b == '\n' || b == '\r' || b == '\t':
				n += 2
			case b < 0x20 || b == '<' || b == '>' || b == '&':
				n += 6
			default:
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			n += 6
		case r == '\u2028' || r == '\u2029':
			n += 6
		default:
			n += size
		}
		i += size
	}
	return n
}
