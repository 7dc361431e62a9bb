package presence

// diffBuffer accumulates the changes not yet broadcast, per topic, relative
// to what local subscribers were last told. A join and a leave of the same
// meta (same key and phx_ref) cancel out: either the client never saw the
// meta (join then leave) or it still has it (leave then join, e.g. a replica
// going down and up within one window). This matters because phoenix.js
// applies all joins of a diff before its leaves, so a diff carrying both for
// one ref would end without it.
//
// An update is a leave of the old ref and a join of a new one: they never
// cancel, and phoenix.js's join-then-leave order is exactly what turns them
// into a replacement.
type diffBuffer struct {
	topics map[string]map[pendingKey]pendingChange
}

type pendingKey struct{ key, ref string }

type pendingChange struct {
	e    *element
	join bool
}

// add records c. It reports whether the buffer was empty before, meaning a
// flush must be scheduled.
func (b *diffBuffer) add(c change) (started bool) {
	if b.topics == nil {
		b.topics = make(map[string]map[pendingKey]pendingChange)
	}
	started = len(b.topics) == 0
	tm := b.topics[c.e.topic]
	if tm == nil {
		tm = make(map[pendingKey]pendingChange)
		b.topics[c.e.topic] = tm
	}
	k := pendingKey{c.e.key, c.e.ref}
	if p, ok := tm[k]; ok && p.join != c.join {
		delete(tm, k)
		if len(tm) == 0 {
			delete(b.topics, c.e.topic)
		}
		return started
	}
	tm[k] = pendingChange{e: c.e, join: c.join}
	return started
}

func (b *diffBuffer) empty() bool { return len(b.topics) == 0 }

// take returns the pending changes per topic and empties the buffer.
func (b *diffBuffer) take() map[string]map[pendingKey]pendingChange {
	t := b.topics
	b.topics = nil
	return t
}

// buildDiff turns one topic's pending changes into a Diff.
func buildDiff(pending map[pendingKey]pendingChange) Diff {
	var joins, leaves []*element
	for _, p := range pending {
		if p.join {
			joins = append(joins, p.e)
		} else {
			leaves = append(leaves, p.e)
		}
	}
	return Diff{Joins: entries(joins), Leaves: entries(leaves)}
}
