package presence

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/socket/protocol"
	"github.com/phxgo/phx/socket/pubsub"
)

// Errors returned by the Tracker; match them with errors.Is.
var (
	// ErrAlreadyTracked is returned by Track when the channel already tracks
	// the key on its topic.
	ErrAlreadyTracked = errors.New("presence: already tracked")
	// ErrNotTracked is returned by Update when the channel does not track
	// the key on its topic.
	ErrNotTracked = errors.New("presence: not tracked")
	// ErrClosed is returned after Close or Shutdown.
	ErrClosed = errors.New("presence: tracker closed")
)

// Tracker tracks presences on this node and replicates them with the
// trackers of the same name on the other nodes of the PubSub. It is safe for
// concurrent use. Create it with New and stop it with Shutdown or Close.
type Tracker struct {
	ps     pubsub.PubSub
	cfg    config
	log    *slog.Logger
	self   replica
	id     string // self.String()
	topic  string // broadcast topic of replication messages
	direct string // this replica's own topic
	in     *inbox
	// maxSilent is the number of quiet periods after which an empty
	// heartbeat is sent anyway, so that peers do not think us down.
	maxSilent int

	refSalt [3]byte
	refSeq  atomic.Uint32

	mu      sync.Mutex
	st      *state
	pending diffBuffer
	hooked  map[string]struct{} // channel IDs whose OnExit is registered
	lastAt  int64
	closed  bool

	// flushMu keeps diffs in order: taking the pending changes and
	// broadcasting them happen under it.
	flushMu sync.Mutex

	// Owned by the run goroutine.
	clocks  map[replica]map[replica]uint64 // latest clock of each peer
	silent  int
	samples int

	lastCheck time.Time // when peers were last checked for silence (cfg.mono); under mu

	kick   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
}

// clockSamplePeriods is how many heartbeat periods pass between checks of
// whether a peer knows more than we do (Phoenix's clock_sample_periods).
const clockSamplePeriods = 2

// New starts a tracker replicating over ps. It subscribes to the tracker's
// topics at once and sends its first heartbeat within a quarter of a
// broadcast period.
func New(ps pubsub.PubSub, opts ...Option) *Tracker {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.node == "" {
		cfg.node = ps.Node()
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	if cfg.mono == nil {
		cfg.mono = time.Now
	}
	if cfg.broadcast <= 0 {
		cfg.broadcast = DefaultBroadcastPeriod
	}
	if cfg.down < 2*cfg.broadcast {
		cfg.down = 2 * cfg.broadcast
	}
	if cfg.permdown <= cfg.down {
		cfg.permdown = cfg.down + cfg.broadcast
	}
	self := replica{Node: cfg.node, Vsn: fmt.Sprintf("%016x%08x", time.Now().UnixMicro(), rand.Uint32())}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Tracker{
		ps:        ps,
		cfg:       cfg,
		log:       cfg.logger.With("tracker", cfg.name, "node", cfg.node),
		self:      self,
		id:        self.String(),
		topic:     cfg.name,
		direct:    cfg.name + ":" + self.String(),
		in:        &inbox{signal: make(chan struct{}, 1), now: cfg.now},
		maxSilent: max(1, int(cfg.down/(2*cfg.broadcast))),
		st:        newState(self),
		hooked:    make(map[string]struct{}),
		clocks:    make(map[replica]map[replica]uint64),
		samples:   clockSamplePeriods,
		kick:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		ctx:       ctx,
		cancel:    cancel,
	}
	binary.BigEndian.PutUint16(t.refSalt[:2], uint16(rand.Uint32()))
	t.refSalt[2] = byte(rand.Uint32())
	t.st.notify = func(what string, r replica) {
		t.log.Info("presence: "+what, "peer", r.Node, "vsn", r.Vsn)
	}
	ps.Subscribe(t.topic, t.in)
	ps.Subscribe(t.direct, t.in)
	go t.run()
	return t
}

// Node returns the node name this tracker replicates as.
func (t *Tracker) Node() string { return t.self.Node }

// Track records that the channel is present under key on its topic with
// meta, and returns the meta's new phx_ref. The presence leaves by itself
// when the channel ends. Tracking the same key twice from one channel fails
// with ErrAlreadyTracked; meta must encode to a JSON object.
func (t *Tracker) Track(ch channel.Joined, key string, meta map[string]any) (string, error) {
	topic, owner := ch.Topic(), ch.ID()
	ref := t.newRef()
	m, user, err := prepareMeta(meta, ref)
	if err != nil {
		return "", fmt.Errorf("presence: track %q on %q: %w", key, topic, err)
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return "", ErrClosed
	}
	if t.st.lookup(owner, topic, key) != nil {
		t.mu.Unlock()
		return "", fmt.Errorf("presence: track %q on %q: %w", key, topic, ErrAlreadyTracked)
	}
	t.st.add(owner, topic, key, ref, t.nextAt(), m, rawMeta(ref, "", user))
	started := t.collect()
	_, hooked := t.hooked[owner]
	t.hooked[owner] = struct{}{}
	t.mu.Unlock()
	if !hooked {
		// Outside the lock: an OnExit registered on an ended channel may
		// run fn at once.
		ch.OnExit(func() { t.exited(owner) })
	}
	t.changed(started)
	return ref, nil
}

// Update replaces the channel's meta for key with meta: the presence gets a
// new phx_ref, with phx_ref_prev set to the old one, and subscribers get one
// diff with the new meta joining and the old one leaving. It returns the
// new phx_ref, or ErrNotTracked.
func (t *Tracker) Update(ch channel.Joined, key string, meta map[string]any) (string, error) {
	topic, owner := ch.Topic(), ch.ID()
	ref := t.newRef()
	m, user, err := prepareMeta(meta, ref)
	if err != nil {
		return "", fmt.Errorf("presence: update %q on %q: %w", key, topic, err)
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return "", ErrClosed
	}
	old := t.st.lookup(owner, topic, key)
	if old == nil {
		t.mu.Unlock()
		return "", fmt.Errorf("presence: update %q on %q: %w", key, topic, ErrNotTracked)
	}
	m["phx_ref_prev"] = old.ref
	t.st.remove(old)
	t.st.add(owner, topic, key, ref, t.nextAt(), m, rawMeta(ref, old.ref, user))
	started := t.collect()
	t.mu.Unlock()
	t.changed(started)
	return ref, nil
}

// Untrack removes the channel's presence under key, if any.
func (t *Tracker) Untrack(ch channel.Joined, key string) {
	topic, owner := ch.Topic(), ch.ID()
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	var started bool
	if e := t.st.lookup(owner, topic, key); e != nil {
		t.st.remove(e)
		started = t.collect()
	}
	t.mu.Unlock()
	t.changed(started)
}

// exited untracks everything a channel tracked, once it has ended.
func (t *Tracker) exited(owner string) {
	t.mu.Lock()
	delete(t.hooked, owner)
	if t.closed {
		t.mu.Unlock()
		return
	}
	for _, e := range t.st.owned(owner) {
		t.st.remove(e)
	}
	started := t.collect()
	t.mu.Unlock()
	t.changed(started)
}

// List returns the presences of topic visible on this node, by key, after
// the Fetch hook. Presences of peers considered down are left out. The
// result is the caller's to modify.
func (t *Tracker) List(topic string) map[string]Entry {
	t.mu.Lock()
	es := t.st.list(topic)
	t.mu.Unlock()
	out := entries(es)
	if t.cfg.fetch != nil && len(out) > 0 {
		out = t.fetch(topic, out)
	}
	return out
}

// PushState pushes presence_state, the List of the channel's topic, to the
// channel's client. Call it after every join (phoenix.js ignores diffs until
// it has the state of its current join), typically right after Track.
func (t *Tracker) PushState(ch channel.Joined) error {
	var state any
	if t.cfg.fetch != nil {
		state = t.List(ch.Topic())
	} else {
		t.mu.Lock()
		es := t.st.list(ch.Topic())
		t.mu.Unlock()
		state = protocol.JSONPayload(appendEntriesJSON(nil, es))
	}
	if err := ch.Push(EventState, state); err != nil {
		return fmt.Errorf("presence: push state on %q: %w", ch.Topic(), err)
	}
	return nil
}

// Shutdown stops the tracker gracefully: it removes this node's presences,
// sending their leaves to local subscribers, and tells the peers to forget
// this node at once instead of after the down period. ctx bounds the wait
// for the tracker's goroutine and the final broadcast. Calling it again, or
// after Close, does nothing.
func (t *Tracker) Shutdown(ctx context.Context) error {
	return t.shutdown(ctx, true)
}

// Close stops the tracker without telling anyone: its presences stay
// visible on the peers for the down period, which gives clients of a
// restarting node time to reconnect elsewhere without a leave/join storm
// (Phoenix's default). Pending diffs are still sent.
func (t *Tracker) Close() error {
	return t.shutdown(context.Background(), false)
}

func (t *Tracker) shutdown(ctx context.Context, graceful bool) error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	if graceful {
		for _, owner := range slices.Sorted(maps.Keys(t.st.owners)) {
			for _, e := range t.st.owned(owner) {
				t.st.remove(e)
			}
		}
		t.collect()
	}
	t.mu.Unlock()

	t.ps.Unsubscribe(t.topic, t.in)
	t.ps.Unsubscribe(t.direct, t.in)
	t.in.close()
	t.cancel()
	close(t.stop)
	var err error
	select {
	case <-t.done:
	case <-ctx.Done():
		err = fmt.Errorf("presence: shutdown: %w", ctx.Err())
	}
	if graceful {
		if berr := t.broadcast(ctx, t.topic, evGracefulPermdown, wireMsg{From: t.self}); berr != nil && err == nil {
			err = fmt.Errorf("presence: shutdown: %w", berr)
		}
	}
	t.flush()
	return err
}

// run is the tracker's goroutine: heartbeats, incoming replication
// messages and coalesced flushes.
func (t *Tracker) run() {
	defer close(t.done)
	// The first heartbeat comes early, at a random point so that nodes
	// started together do not beat in lockstep.
	hb := time.NewTimer(time.Duration(rand.Int64N(int64(t.cfg.broadcast/4) + 1)))
	defer hb.Stop()
	// Silent peers are looked for more often than heartbeats go out, so
	// that a dead node's presences leave within a few hundred milliseconds
	// of the down period rather than up to a broadcast period later.
	check := time.NewTicker(downCheckPeriod(t.cfg.down))
	defer check.Stop()
	flush := time.NewTimer(time.Hour)
	flush.Stop()
	defer flush.Stop()
	armed := false
	first := true
	for {
		select {
		case <-t.stop:
			return
		case <-hb.C:
			t.tick(first)
			first = false
			hb.Reset(t.cfg.broadcast)
		case <-check.C:
			t.detectDowns()
		case <-t.in.signal:
			t.drain()
		case <-t.kick:
			if !armed {
				flush.Reset(t.cfg.coalesce)
				armed = true
			}
		case <-flush.C:
			armed = false
			t.flush()
		}
	}
}

// tick sends the heartbeat, asks better-informed peers for transfers every
// few periods and detects silent peers.
func (t *Tracker) tick(first bool) {
	now := t.cfg.now()
	t.mu.Lock()
	delta := t.st.takeDelta()
	var hb *wireMsg
	t.silent++
	if delta != nil || first || t.silent >= t.maxSilent {
		hb = &wireMsg{From: t.self, Clock: clockList(t.st.clock()), State: delta}
		t.silent = 0
	}
	var reqs []replica
	var reqClock []wireClock
	if t.samples--; t.samples <= 0 {
		t.samples = clockSamplePeriods
		reqs = t.st.transfersNeeded(t.clocks)
		clear(t.clocks)
		if len(reqs) > 0 {
			reqClock = clockList(t.st.clock())
		}
	}
	t.forgetSilent(now)
	started := t.collect()
	t.mu.Unlock()

	if hb != nil {
		// A lost delta is not fatal: peers see our clock move past what
		// they have and ask for a transfer. A large delta goes out as
		// several heartbeats, each with the clock.
		for _, part := range split(hb.State, t.cfg.maxMsg, hb.Clock) {
			hb.State = part
			if err := t.broadcast(t.ctx, t.topic, evHeartbeat, *hb); err != nil {
				t.log.Warn("presence: heartbeat", "err", err)
				break
			}
		}
	}
	for _, r := range reqs {
		t.log.Debug("presence: transfer request", "peer", r.Node, "vsn", r.Vsn)
		if err := t.broadcast(t.ctx, t.directTopic(r), evTransferReq, wireMsg{From: t.self, Clock: reqClock}); err != nil {
			t.log.Warn("presence: transfer request", "peer", r.Node, "err", err)
		}
	}
	t.changed(started)
}

// downCheckPeriod is how often run looks for silent peers: a twentieth of
// the down period, within [50 ms, 1 s].
func downCheckPeriod(down time.Duration) time.Duration {
	return min(max(down/20, 50*time.Millisecond), time.Second)
}

// detectDowns marks the peers silent for the down period as down (and
// those silent for the permdown period as gone) and tells subscribers.
func (t *Tracker) detectDowns() {
	// A peer is silent if nothing of it has arrived, not if what arrived
	// is still queued behind a large merge: handle the queue first, so
	// that a busy tracker does not mark a live peer down.
	t.drain()
	now := t.cfg.now()
	t.mu.Lock()
	t.forgetSilent(now)
	started := t.collect()
	t.mu.Unlock()
	t.changed(started)
}

// forgetSilent is detectDowns under t.mu.
func (t *Tracker) forgetSilent(now time.Time) {
	if stall := t.stalled(); stall > 0 {
		// A long merge stalls the tracker for a fraction of a second;
		// one that came close to costing every peer is worth a warning.
		level := slog.LevelDebug
		if stall >= t.cfg.down/2 {
			level = slog.LevelWarn
		}
		t.log.Log(t.ctx, level, "presence: tracker stalled; its peers' silence meanwhile is not held against them", "stall", stall)
		t.st.excuse(stall, now)
	}
	t.st.detectDowns(now, t.cfg.down, t.cfg.permdown)
	for p := range t.clocks {
		if !t.st.visible(p) {
			delete(t.clocks, p)
		}
	}
}

// stalled returns for how long, beyond its check period, this tracker has
// not looked at its peers: its process got no CPU (a starved box, a
// stopped VM, a long GC assist) or its goroutine was blocked. A peer's
// heartbeats may be waiting unread in a socket all that time, so silence
// during a stall is no evidence against the peer; without this, a
// tracker starved for longer than the down period would mark every peer
// down at once on waking, and take them all back a moment later. A dead
// peer is then noticed that much later. Under t.mu.
func (t *Tracker) stalled() time.Duration {
	m := t.cfg.mono()
	last := t.lastCheck
	t.lastCheck = m
	if last.IsZero() {
		return 0
	}
	period := downCheckPeriod(t.cfg.down)
	if gap := m.Sub(last); gap > 2*period {
		return gap - period
	}
	return 0
}

// drain handles the queued replication messages.
func (t *Tracker) drain() {
	for _, a := range t.in.take() {
		t.handle(a.m, a.at)
	}
}

// handle applies one replication message from a peer, which arrived at at:
// that is when the peer was last heard from, however long the message
// waited in the inbox.
func (t *Tracker) handle(m *pubsub.Message, at time.Time) {
	if m.From == t.id {
		return // our own broadcast coming back; no need to decode it
	}
	var w wireMsg
	if err := m.Payload.Decode(&w); err != nil {
		t.log.Warn("presence: bad replication message", "event", m.Event, "from", m.Node, "err", err)
		return
	}
	if w.From == t.self {
		return // our own broadcast coming back
	}
	var ack *wireState
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	if w.From.Node == t.self.Node {
		t.mu.Unlock()
		t.log.Warn("presence: message from another tracker with this node name", "vsn", w.From.Vsn)
		return
	}
	bad := 0
	switch m.Event {
	case evGracefulPermdown:
		if cur, ok := t.st.nodes[w.From.Node]; ok && cur == w.From {
			t.st.permdown(w.From)
		}
	case evHeartbeat, evTransferAck, evTransferReq:
		if !t.st.seen(w.From, at) {
			break
		}
		if w.State != nil {
			bad = t.st.merge(w.State)
		}
		switch m.Event {
		case evHeartbeat:
			t.clocks[w.From] = clockMap(w.Clock)
		case evTransferReq:
			ack = t.st.extract(w.From, clockMap(w.Clock))
		}
	}
	started := t.collect()
	t.mu.Unlock()

	if bad > 0 {
		t.log.Warn("presence: skipped undecodable metas", "from", w.From.Node, "count", bad)
	}
	if ack != nil {
		parts := split(ack, t.cfg.maxMsg, nil)
		t.log.Debug("presence: transfer", "peer", w.From.Node, "values", len(ack.Values), "messages", len(parts))
		for _, part := range parts {
			if err := t.broadcast(t.ctx, t.directTopic(w.From), evTransferAck, wireMsg{From: t.self, State: part}); err != nil {
				t.log.Warn("presence: transfer", "peer", w.From.Node, "err", err)
				break
			}
		}
	}
	t.changed(started)
}

func (t *Tracker) directTopic(r replica) string { return t.topic + ":" + r.String() }

func (t *Tracker) broadcast(ctx context.Context, topic, event string, w wireMsg) error {
	p, err := protocol.Marshal(w)
	if err != nil {
		return err
	}
	// From carries our replica id so that we can skip our own messages
	// without decoding them.
	return t.ps.Broadcast(ctx, &pubsub.Message{Topic: topic, Event: event, Payload: p, From: t.id, Node: t.self.Node})
}

// collect moves the state's changes into the diff buffer and reports
// whether a flush must be scheduled. Callers hold mu.
func (t *Tracker) collect() bool {
	started := false
	for _, c := range t.st.takeChanges() {
		if t.pending.add(c) {
			started = true
		}
	}
	return started && !t.pending.empty()
}

// changed sends the pending diffs now, or makes sure a flush is scheduled.
// Callers must not hold mu.
func (t *Tracker) changed(started bool) {
	if t.cfg.coalesce <= 0 {
		t.flush()
		return
	}
	if started {
		select {
		case t.kick <- struct{}{}:
		default:
		}
	}
}

// flush broadcasts the pending diffs to local subscribers, one per topic.
func (t *Tracker) flush() {
	t.flushMu.Lock()
	defer t.flushMu.Unlock()
	t.mu.Lock()
	batch := t.pending.take()
	t.mu.Unlock()
	for _, topic := range slices.Sorted(maps.Keys(batch)) {
		p, err := t.encodeDiff(topic, batch[topic])
		if err != nil {
			t.log.Warn("presence: encode diff", "topic", topic, "err", err)
			continue
		}
		t.ps.LocalBroadcast(&pubsub.Message{Topic: topic, Event: EventDiff, Payload: p, Node: t.self.Node})
	}
}

func (t *Tracker) encodeDiff(topic string, pending map[pendingKey]pendingChange) (protocol.Payload, error) {
	if t.cfg.fetch == nil {
		var joins, leaves []*element
		for _, p := range pending {
			if p.join {
				joins = append(joins, p.e)
			} else {
				leaves = append(leaves, p.e)
			}
		}
		b := append(make([]byte, 0, 64), `{"joins":`...)
		b = appendEntriesJSON(b, joins)
		b = append(b, `,"leaves":`...)
		b = appendEntriesJSON(b, leaves)
		return protocol.JSONPayload(append(b, '}')), nil
	}
	d := buildDiff(pending)
	if len(d.Joins) > 0 {
		d.Joins = t.fetch(topic, d.Joins)
	}
	if len(d.Leaves) > 0 {
		d.Leaves = t.fetch(topic, d.Leaves)
	}
	return protocol.Marshal(d)
}

func (t *Tracker) fetch(topic string, es map[string]Entry) map[string]Entry {
	out := t.cfg.fetch(topic, es)
	if out == nil {
		out = make(map[string]Entry)
	}
	return out
}

// nextAt returns a creation time strictly after the previous one, so that
// metas created here list in creation order. Callers hold mu.
func (t *Tracker) nextAt() int64 {
	at := t.cfg.now().UnixMicro()
	if at <= t.lastAt {
		at = t.lastAt + 1
	}
	t.lastAt = at
	return at
}

// newRef returns a phx_ref: 12 bytes of time (µs), a per-tracker random
// salt and a counter, in URL-safe base64 (16 characters), like Phoenix's.
func (t *Tracker) newRef() string {
	var b [12]byte
	us := uint64(t.cfg.now().UnixMicro())
	binary.BigEndian.PutUint16(b[0:2], uint16(us>>32))
	binary.BigEndian.PutUint32(b[2:6], uint32(us))
	copy(b[6:9], t.refSalt[:])
	n := t.refSeq.Add(1)
	b[9], b[10], b[11] = byte(n>>16), byte(n>>8), byte(n)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// prepareMeta copies meta with its phx_ref and encodes the app's part of it
// once; the JSON is reused for replication.
func prepareMeta(meta map[string]any, ref string) (map[string]any, []byte, error) {
	m := make(map[string]any, len(meta)+2)
	for k, v := range meta {
		if k != "phx_ref" && k != "phx_ref_prev" {
			m[k] = v
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, nil, fmt.Errorf("encode meta: %w", err)
	}
	m["phx_ref"] = ref
	return m, bytes.TrimSpace(buf.Bytes()), nil
}

// rawMeta splices the refs into the encoded meta. Refs are URL-safe base64
// and need no escaping.
func rawMeta(ref, prev string, user []byte) json.RawMessage {
	b := make([]byte, 0, len(user)+64)
	b = append(b, `{"phx_ref":"`...)
	b = append(b, ref...)
	b = append(b, '"')
	if prev != "" {
		b = append(b, `,"phx_ref_prev":"`...)
		b = append(b, prev...)
		b = append(b, '"')
	}
	if len(user) > 2 { // not "{}"
		b = append(b, ',')
		b = append(b, user[1:]...)
	} else {
		b = append(b, '}')
	}
	return b
}

// inbox queues replication messages for the tracker's goroutine, because a
// Subscriber must not block.
type inbox struct {
	mu     sync.Mutex
	msgs   []arrival
	closed bool
	signal chan struct{}
	now    func() time.Time
}

// arrival is a queued message and the time it was delivered.
type arrival struct {
	m  *pubsub.Message
	at time.Time
}

// Deliver implements pubsub.Subscriber.
func (in *inbox) Deliver(m *pubsub.Message) {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return
	}
	in.msgs = append(in.msgs, arrival{m, in.now()})
	in.mu.Unlock()
	select {
	case in.signal <- struct{}{}:
	default:
	}
}

func (in *inbox) take() []arrival {
	in.mu.Lock()
	defer in.mu.Unlock()
	m := in.msgs
	in.msgs = nil
	return m
}

func (in *inbox) close() {
	in.mu.Lock()
	in.closed = true
	in.msgs = nil
	in.mu.Unlock()
}
