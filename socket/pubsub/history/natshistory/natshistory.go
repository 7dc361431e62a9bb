// Package natshistory keeps the histories of recoverable topics in a NATS
// JetStream stream, for a cluster whose nodes share the NATS pubsub
// adapter, so that a client whose node died recovers what it missed from any
// other node.
//
// All topics share one stream (Options.Stream), which captures the subjects
// under Options.Subject; a topic's broadcasts go to the subject
// Subject + "." + the topic in unpadded URL-safe base64 (topics hold ':',
// '.', '*' and the like, which mean something to NATS). The stream keeps
// Size broadcasts per subject (MaxMsgsPerSubject) for TTL (MaxAge),
// discarding the oldest. A broadcast's offset is its stream sequence: it
// grows with every broadcast of every topic, so a topic's offsets increase
// but skip (the store is not history.Dense). The epoch names the stream's
// instance (its creation time): deleting the stream, JetStream's flush,
// starts a new history for every topic, and a position from the old one is
// never taken for a position in the new one.
//
// Publishing stores the broadcast's envelope with one JetStream publish and
// waits for the acknowledgement, which gives the offset. Nothing is
// delivered at that point: every node, the publisher's included, runs a
// consumer over the whole stream and hands each broadcast to its local
// subscribers, so on every node a topic's broadcasts arrive in offset order
// and exactly once. A node's consumer starts with the broadcasts published
// after New; when its link to JetStream breaks it resumes after the last
// broadcast it delivered (late, but in order and without a gap, as long as
// the stream still holds them), and when the stream was recreated it
// delivers the new stream from its start.
//
// A recovery query reads the topic's last broadcast (the top), then its
// broadcasts after the client's offset, through a short-lived consumer
// filtered on the topic's subject. Offsets are not consecutive, so
// completeness cannot be read off them: JetStream removes a subject's
// broadcasts oldest first (by count as by age), hence nothing after the
// client's offset is gone if the subject still holds a broadcast at or
// before it, or if nothing after it expired (the stream's first sequence is
// not past it) and the subject holds fewer than Size broadcasts (so none
// was trimmed). Otherwise, or when more than the limit were missed, or the
// epoch differs, the result is incomplete. The stream is examined again at
// the end of the query, so that a query overlapping a flush is retried
// rather than answered from two streams.
//
// A node that finds the stream gone (deleted, or lost with a memory-backed
// server) creates it again, but only once it has been gone for a second:
// JetStream frees a stream's name before it has deleted its files, and a
// stream recreated at once may lose its own files with them. The first
// broadcasts after a flush wait for that (within their context).
//
// While JetStream is unreachable a recoverable broadcast fails and is
// delivered nowhere, even locally: it cannot be numbered, and a broadcast
// without a position could not be recovered later. (If the link breaks
// while a publish is in flight, the broadcast may have been stored although
// Publish reports an error; it is then delivered, with its position, like
// any other.) Plain broadcasts are unaffected.
//
// Unlike the Memory store, whose TTL drops a topic's whole history once the
// topic has been idle that long, JetStream's MaxAge expires broadcasts one
// by one, TTL after each was published, and expiry does not change the
// epoch: a client that comes back after its broadcasts expired learns from
// the completeness rule that it missed some.
package natshistory

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/phxgo/phx/socket/pubsub"
	"github.com/phxgo/phx/socket/pubsub/history"
	"github.com/phxgo/phx/socket/pubsub/internal/envelope"
	phxnats "github.com/phxgo/phx/socket/pubsub/nats"
)

// Defaults of Options.
const (
	DefaultStream  = "PHX_HISTORY"
	DefaultSubject = "phx.history"
)

// Timing of the delivery consumer: a pull request waits pullExpiry, the
// server sends a heartbeat every pullHeartbeat meanwhile, and two missed
// heartbeats make the consumer start over.
const (
	pullExpiry    = 10 * time.Second
	pullHeartbeat = 2 * time.Second
	// inactive is how long JetStream keeps a consumer nobody pulls from,
	// should this node fail to delete it.
	inactive   = 30 * time.Second
	maxBackoff = 5 * time.Second
	// cleanupTimeout bounds deleting a consumer that is no longer used.
	cleanupTimeout = 2 * time.Second
	// recreateDelay is how long the stream must have been gone before
	// this node creates it again (see Store.stream).
	recreateDelay = time.Second
	// fetchBatch is how many broadcasts a recovery query fetches at once.
	fetchBatch = 1000
)

// Options configures New.
type Options struct {
	// Size and TTL limit each topic's history (history.DefaultSize and
	// history.DefaultTTL if zero): they are the stream's MaxMsgsPerSubject
	// and MaxAge. TTL counts from each broadcast's publication.
	history.Options
	// Stream names the JetStream stream (DefaultStream if empty). New
	// creates it, or updates its configuration to these Options.
	Stream string
	// Subject prefixes the topics' subjects (DefaultSubject if empty); the
	// stream captures Subject + ".>", which must not overlap the adapter's
	// subject or any other stream's. Clusters sharing one NATS are
	// separated by their stream and subject.
	Subject string
	// Storage is where the stream keeps its messages: jetstream.FileStorage
	// (the zero value) survives a server restart, jetstream.MemoryStorage
	// does not (a restart then starts new histories).
	Storage jetstream.StorageType
	// Replicas is the stream's replication factor in a JetStream cluster
	// (1 if zero).
	Replicas int
	// Logger receives delivery problems and recoveries (slog.Default if
	// nil).
	Logger *slog.Logger
}

// Store is a history.Store in NATS JetStream. Create it with New and stop
// it with Close.
type Store struct {
	ps   *phxnats.PubSub
	nc   *natsgo.Conn
	js   jetstream.JetStream
	opts Options
	cfg  jetstream.StreamConfig
	log  *slog.Logger

	// epoch is the latest epoch this node knows of, the one Publish
	// reports, or "" while the consumer has lost its stream (which may have
	// been recreated). seen is the highest sequence known to be stored in
	// that stream: a publish acknowledged at or below it went to another
	// stream, one recreated since. The consumer stamps deliveries with the
	// epoch of the stream it actually reads.
	posMu sync.Mutex
	epoch string
	seen  uint64

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	status chan natsgo.Status
	wake   chan struct{} // cuts a retry delay short
	done   chan struct{} // the consumer goroutine has returned
	wdone  chan struct{} // the status goroutine has returned

	mu     sync.Mutex
	it     jetstream.MessagesContext // the consumer's current iterator
	closed bool

	goneMu sync.Mutex
	gone   time.Time // when the stream was first found gone; zero if it is not

	bufs sync.Pool // *[]byte envelopes, reused once Publish returns
}

var _ history.Store = (*Store)(nil)

// New creates (or updates) the stream through the connection of ps, which
// must be (or wrap) the node's NATS adapter, and starts this node's
// delivery consumer, which delivers the broadcasts published from now on.
// The connection must have JetStream available. Close the Store before the
// adapter and the connection.
func New(ctx context.Context, ps pubsub.PubSub, opts Options) (*Store, error) {
	np, ok := pubsub.Underlying(ps).(*phxnats.PubSub)
	if !ok {
		return nil, fmt.Errorf("%w: natshistory needs the NATS adapter, not %T", history.ErrUnsupported, pubsub.Underlying(ps))
	}
	opts.Options = opts.Options.WithDefaults()
	if opts.Stream == "" {
		opts.Stream = DefaultStream
	}
	if opts.Subject == "" {
		opts.Subject = DefaultSubject
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	nc := np.Conn()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("natshistory: %w", err)
	}
	s := &Store{
		ps:   np,
		nc:   nc,
		js:   js,
		opts: opts,
		cfg: jetstream.StreamConfig{
			Name:              opts.Stream,
			Description:       "phx recoverable broadcasts",
			Subjects:          []string{opts.Subject + ".>"},
			Retention:         jetstream.LimitsPolicy,
			Discard:           jetstream.DiscardOld,
			MaxMsgsPerSubject: int64(opts.Size),
			MaxAge:            opts.TTL,
			Storage:           opts.Storage,
			Replicas:          opts.Replicas,
		},
		log:   opts.Logger.With("history", "nats", "node", np.Node(), "stream", opts.Stream),
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
		wdone: make(chan struct{}),
	}
	st, err := js.CreateOrUpdateStream(ctx, s.cfg)
	if err != nil {
		return nil, fmt.Errorf("natshistory: create stream %q: %w", opts.Stream, err)
	}
	cons, epoch, next, err := s.start(ctx, epochOf(st.CachedInfo()), st.CachedInfo().State.LastSeq+1)
	if err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.status = nc.StatusChanged(natsgo.CONNECTED)
	go s.watch()
	go s.run(cons, epoch, next)
	return s, nil
}

// epochOf names a stream instance: its creation time, which a deleted and
// recreated stream does not share, and which survives server restarts.
func epochOf(info *jetstream.StreamInfo) string {
	return strconv.FormatInt(info.Created.UnixNano(), 16)
}

func (s *Store) subject(topic string) string {
	return s.opts.Subject + "." + base64.RawURLEncoding.EncodeToString([]byte(topic))
}

// DenseOffsets implements history.Dense: offsets are stream sequences,
// shared by all topics, so one topic's offsets skip.
func (s *Store) DenseOffsets() bool { return false }

// Publish implements history.Store. ps must be (or wrap) the adapter the
// Store was created with. m.Offset is exact. m.Epoch is the latest epoch
// this node knows of, checked against the acknowledgement: a sequence at or
// below one this node saw stored under that epoch means the stream was
// recreated by another node, and the stream is asked for its epoch. One
// case escapes the check: another node recreated the stream and published
// past this node's last sequence before this node's consumer noticed; the
// caller's copy may then carry the previous epoch. The subscribers' copies,
// which come from the consumer, always carry the epoch of the stream they
// were read from.
func (s *Store) Publish(ctx context.Context, ps pubsub.PubSub, m *pubsub.Message) error {
	if np, ok := pubsub.Underlying(ps).(*phxnats.PubSub); !ok || np != s.ps {
		return fmt.Errorf("%w: natshistory needs the NATS adapter it was created with, not %T", history.ErrUnsupported, pubsub.Underlying(ps))
	}
	if m.Topic == "" {
		return errors.New("natshistory: publish: empty topic")
	}
	if s.ctx.Err() != nil {
		return fmt.Errorf("natshistory: publish %q: %w", m.Topic, pubsub.ErrClosed)
	}
	// nats.go would buffer a publish made while reconnecting and send it
	// later: the broadcast would then be delivered after Publish failed.
	if !s.nc.IsConnected() {
		return fmt.Errorf("natshistory: publish %q: nats is %v", m.Topic, s.nc.Status())
	}
	m.Node = s.ps.Node()
	bp, _ := s.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	defer s.bufs.Put(bp)
	*bp = appendStored((*bp)[:0], m.Node, m)
	subj := s.subject(m.Topic)
	known, before := s.position()
	ack, err := s.js.Publish(ctx, subj, *bp, jetstream.WithExpectStream(s.opts.Stream), jetstream.WithRetryAttempts(0))
	if errors.Is(err, jetstream.ErrNoStreamResponse) {
		// No stream captures the subject: it was deleted. Recreate it (a
		// new history) and try once more, with the usual retries for a
		// stream that is still electing its leader.
		if _, err := s.ensure(ctx); err != nil {
			return fmt.Errorf("natshistory: publish %q: %w", m.Topic, err)
		}
		ack, err = s.js.Publish(ctx, subj, *bp, jetstream.WithExpectStream(s.opts.Stream))
	}
	if err != nil {
		return fmt.Errorf("natshistory: publish %q: %w", m.Topic, err)
	}
	// The caller's copy learns its position too; subscribers get theirs
	// from their node's consumer, which reads the stream's epoch.
	m.Offset = ack.Sequence
	if e, _ := s.position(); e == known && known != "" && ack.Sequence > before {
		// Stored after a broadcast this node saw in the stream of known:
		// the same stream.
		m.Epoch = known
		s.saw(known, ack.Sequence)
		return nil
	}
	// The consumer lost its stream, or the epoch changed during the
	// publish, or the sequence went back (the stream was recreated): ask.
	// Should that fail, the broadcast is nevertheless stored and
	// delivered, and only this copy lacks its epoch.
	if st, err := s.js.Stream(ctx, s.opts.Stream); err == nil {
		m.Epoch = epochOf(st.CachedInfo())
		s.noteEpoch(m.Epoch, ack.Sequence)
	}
	return nil
}

// position returns the epoch this node knows of and the highest sequence
// it saw stored under it.
func (s *Store) position() (string, uint64) {
	s.posMu.Lock()
	defer s.posMu.Unlock()
	return s.epoch, s.seen
}

// saw records that seq is stored in the stream of epoch.
func (s *Store) saw(epoch string, seq uint64) {
	s.posMu.Lock()
	if s.epoch == epoch && seq > s.seen {
		s.seen = seq
	}
	s.posMu.Unlock()
}

// setEpoch records the epoch of the stream the consumer reads, and seq as
// stored in it; it reports whether the epoch changed.
func (s *Store) setEpoch(epoch string, seq uint64) bool {
	s.posMu.Lock()
	defer s.posMu.Unlock()
	if s.epoch == epoch {
		s.seen = max(s.seen, seq)
		return false
	}
	s.epoch, s.seen = epoch, seq
	return true
}

// appendStored encodes m as stored in the stream: an envelope with history
// fields, so that it carries the position key, whose offset (1) and epoch
// (empty) are placeholders: the real ones are the stream sequence and the
// stream's epoch, known once it is stored.
func appendStored(dst []byte, node string, m *pubsub.Message) []byte {
	dst = envelope.AppendHistoryHead(dst, node, m)
	dst = append(dst, 1, '1', 0)
	return envelope.AppendHistoryTail(dst, m)
}

var errNotStored = errors.New("not a history entry")

// decodeStored reads a stored envelope and gives it its position.
func decodeStored(data []byte, seq uint64, epoch string) (*pubsub.Message, error) {
	m, err := envelope.Decode(data)
	if err != nil {
		return nil, err
	}
	if m.Offset == 0 {
		// Without history fields: not published by a Store (the stream's
		// subjects overlap another publisher's, the adapter's say).
		return nil, errNotStored
	}
	m.Offset, m.Epoch = seq, epoch
	return m, nil
}

// ensure returns the stream (see stream) and notes its epoch.
func (s *Store) ensure(ctx context.Context) (jetstream.Stream, error) {
	st, err := s.stream(ctx)
	if err != nil {
		return nil, err
	}
	s.noteEpoch(epochOf(st.CachedInfo()), 0)
	return st, nil
}

// stream returns the stream, with its info, creating it if it is gone.
//
// A stream found gone is only created once it has been gone for
// recreateDelay: JetStream forgets a stream's name before it has finished
// deleting the stream's files, and a stream created meanwhile under the same
// name may have its files deleted too (nats-server 2.9 then fails every
// publish with "error opening msg block file"). The nodes notice a deletion
// at once (their consumers are deleted first), so without the delay they
// would recreate the stream within that window.
func (s *Store) stream(ctx context.Context) (jetstream.Stream, error) {
	for {
		st, err := s.js.Stream(ctx, s.opts.Stream)
		if err == nil {
			s.goneMu.Lock()
			s.gone = time.Time{}
			s.goneMu.Unlock()
			return st, nil
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("stream %q: %w", s.opts.Stream, err)
		}
		s.goneMu.Lock()
		if s.gone.IsZero() {
			s.gone = time.Now()
		}
		wait := recreateDelay - time.Since(s.gone)
		s.goneMu.Unlock()
		if wait <= 0 {
			st, err = s.js.CreateStream(ctx, s.cfg)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				continue // another node was first
			}
			if err != nil {
				return nil, fmt.Errorf("create stream %q: %w", s.opts.Stream, err)
			}
			s.log.Warn("the history stream was gone and is created again: histories start over", "epoch", epochOf(st.CachedInfo()))
			continue // clears gone
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("stream %q is gone and not yet recreated: %w", s.opts.Stream, ctx.Err())
		case <-t.C:
		}
	}
}

// noteEpoch records an epoch seen by Publish or Since, with a sequence
// stored under it; a new epoch means the stream was recreated, and the
// consumer starts over on the new stream.
func (s *Store) noteEpoch(e string, seq uint64) {
	if s.setEpoch(e, seq) {
		s.restart()
	}
}

// Since implements history.Store.
func (s *Store) Since(ctx context.Context, topic string, since history.Position, limit int) (history.Result, error) {
	if topic == "" {
		return history.Result{}, errors.New("natshistory: since: empty topic")
	}
	for range 3 {
		res, stable, err := s.since(ctx, s.subject(topic), since, max(limit, 0))
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue // deleted during the query
		}
		if err != nil {
			return history.Result{}, fmt.Errorf("natshistory: since %q: %w", topic, err)
		}
		if stable {
			return res, nil
		}
	}
	return history.Result{}, fmt.Errorf("natshistory: since %q: the stream keeps being recreated", topic)
}

// since runs one recovery query; stable is false when the stream was
// recreated while it ran, and the answer must not be used.
func (s *Store) since(ctx context.Context, subj string, since history.Position, limit int) (res history.Result, stable bool, err error) {
	st, err := s.ensure(ctx)
	if err != nil {
		return res, false, err
	}
	info := st.CachedInfo()
	epoch := epochOf(info)
	// The top: the subject's last broadcast, or, for a subject that holds
	// none, the stream's last sequence when the subject had none before it.
	top, held := info.State.LastSeq, false
	last, err := st.GetLastMsgForSubject(ctx, subj)
	switch {
	case err == nil:
		top, held = last.Sequence, true
	case errors.Is(err, jetstream.ErrMsgNotFound):
	default:
		return res, false, err
	}
	res.Top = history.Position{Offset: top, Epoch: epoch}
	same := since.Epoch == epoch && since.Offset <= top
	var found int // the subject's broadcasts in (since, top]
	if same && held && since.Offset < top {
		if limit > 0 {
			res.Messages, found, err = s.read(ctx, subj, since.Offset+1, top, limit, epoch)
			if err != nil {
				return res, false, err
			}
		} else {
			found = 1 // top itself; the answer is incomplete anyway
		}
	}
	// Whether the subject still holds a broadcast at or before since:
	// asked after the read, so that it covers trimming during the read.
	intact := false
	if same {
		first, err := st.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(subj))
		switch {
		case err == nil:
			intact = first.Sequence <= since.Offset
		case errors.Is(err, jetstream.ErrMsgNotFound):
		default:
			return res, false, err
		}
	}
	// The stream again, last: the same epoch means every step above read
	// the same stream, since an epoch seen before and after the query
	// existed throughout.
	end, err := st.Info(ctx, jetstream.WithSubjectFilter(subj))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return res, false, nil
	}
	if err != nil {
		return res, false, err
	}
	if epochOf(end) != epoch {
		return res, false, nil
	}
	if !same {
		return history.Result{Top: res.Top}, true, nil
	}
	if !intact {
		// Nothing after since expired, and the subject holds fewer than
		// Size (had one after since been trimmed, the subject would hold
		// Size after since until one of them expired).
		intact = end.State.FirstSeq <= since.Offset+1 && end.State.Subjects[subj] < uint64(s.opts.Size)
	}
	res.Complete = intact && found <= limit
	return res, true, nil
}

// read returns the newest limit broadcasts of subj in [from, top], oldest
// first, and how many there are in all.
func (s *Store) read(ctx context.Context, subj string, from, top uint64, limit int, epoch string) ([]*pubsub.Message, int, error) {
	cons, err := s.js.CreateConsumer(ctx, s.opts.Stream, jetstream.ConsumerConfig{
		Description:       "phx history recovery query",
		FilterSubject:     subj,
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       from,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		InactiveThreshold: inactive,
	})
	if err != nil {
		return nil, 0, fmt.Errorf("read: %w", err)
	}
	defer s.deleteConsumer(context.WithoutCancel(ctx), cons)
	// The newest limit so far, in a ring.
	ring := make([]jetstream.Msg, 0, min(uint64(limit), cons.CachedInfo().NumPending))
	found, at := 0, uint64(0)
	for at < top {
		batch, err := cons.FetchNoWait(fetchBatch)
		if err != nil {
			return nil, 0, fmt.Errorf("read: %w", err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			md, err := msg.Metadata()
			if err != nil {
				return nil, 0, fmt.Errorf("read: %w", err)
			}
			if md.Sequence.Stream <= at || md.Sequence.Stream > top {
				continue
			}
			at = md.Sequence.Stream
			if len(ring) < limit {
				ring = append(ring, msg)
			} else {
				ring[found%limit] = msg
			}
			found++
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, 0, fmt.Errorf("read: %w", err)
		}
		if n == 0 {
			break // the rest was removed meanwhile
		}
	}
	msgs := make([]*pubsub.Message, 0, len(ring))
	for i := range ring {
		msg := ring[(found-len(ring)+i)%limit]
		md, _ := msg.Metadata()
		m, err := decodeStored(msg.Data(), md.Sequence.Stream, epoch)
		if err != nil {
			return nil, 0, fmt.Errorf("read seq %d: %w", md.Sequence.Stream, err)
		}
		msgs = append(msgs, m)
	}
	return msgs, found, nil
}

// deleteConsumer removes a consumer this node no longer reads, if JetStream
// is reachable; otherwise JetStream removes it once it is inactive.
func (s *Store) deleteConsumer(ctx context.Context, cons jetstream.Consumer) {
	if !s.nc.IsConnected() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
	defer cancel()
	_ = s.js.DeleteConsumer(ctx, s.opts.Stream, cons.CachedInfo().Name)
}

var errRecreated = errors.New("the stream was recreated while the consumer started")

// start creates the delivery consumer on the current stream: from next if
// the stream is still the one of epoch, from its start if it was recreated
// since.
func (s *Store) start(ctx context.Context, epoch string, next uint64) (jetstream.Consumer, string, uint64, error) {
	st, err := s.stream(ctx)
	if err != nil {
		return nil, "", 0, fmt.Errorf("natshistory: %w", err)
	}
	if e := epochOf(st.CachedInfo()); e != epoch {
		s.log.Warn("the history stream was recreated: delivering the new one from its start", "epoch", e)
		epoch, next = e, 1
	}
	cons, err := s.js.CreateConsumer(ctx, s.opts.Stream, jetstream.ConsumerConfig{
		Description:       "phx history delivery to node " + s.ps.Node(),
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       next,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		InactiveThreshold: inactive,
	})
	if err != nil {
		return nil, "", 0, fmt.Errorf("natshistory: create consumer: %w", err)
	}
	// Make sure the consumer belongs to the stream examined above: the
	// stream was the same before and after its creation.
	info, err := st.Info(ctx)
	if err == nil && epochOf(info) != epoch {
		err = errRecreated
	}
	if err != nil {
		s.deleteConsumer(ctx, cons)
		return nil, "", 0, fmt.Errorf("natshistory: %w", err)
	}
	s.setEpoch(epoch, next-1)
	return cons, epoch, next, nil
}

// run delivers the stream to this node's subscribers until Close, starting
// over with a new consumer whenever the current one fails.
func (s *Store) run(cons jetstream.Consumer, epoch string, next uint64) {
	defer close(s.done)
	backoff, failing := 100*time.Millisecond, false
	for {
		err := s.consume(cons, epoch, &next)
		if errors.Is(err, jetstream.ErrConsumerDeleted) {
			// Most likely with the stream: until the consumer knows which
			// stream it reads, Publish asks.
			s.log.Info("history delivery consumer deleted; starting over", "from", next)
			s.setEpoch("", 0)
			err = nil // start over at once
		}
		s.deleteConsumer(context.Background(), cons)
		cons = nil
		for cons == nil {
			if s.ctx.Err() != nil {
				return
			}
			if err != nil && !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				if !failing {
					s.log.Warn("history delivery interrupted; retrying", "err", err)
				}
				failing = true
				select {
				case <-s.ctx.Done():
					return
				case <-s.wake:
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, maxBackoff)
			}
			if s.nc.IsClosed() {
				<-s.ctx.Done() // nothing to do until Close
				return
			}
			ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
			cons, epoch, next, err = s.start(ctx, epoch, next)
			cancel()
			if err == nil && failing {
				s.log.Info("history delivery resumed", "from", next)
			}
		}
		backoff, failing = 100*time.Millisecond, false
	}
}

// consume delivers from cons until its iterator fails or is stopped.
func (s *Store) consume(cons jetstream.Consumer, epoch string, next *uint64) error {
	it, err := cons.Messages(
		jetstream.PullExpiry(pullExpiry),
		jetstream.PullHeartbeat(pullHeartbeat),
		jetstream.WithMessagesErrOnMissingHeartbeat(true))
	if err != nil {
		return err
	}
	defer it.Stop()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.it = it
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.it = nil
		s.mu.Unlock()
	}()
	var delivered uint64 // the consumer's sequence
	for {
		msg, err := it.Next()
		if err != nil {
			return err
		}
		md, err := msg.Metadata()
		if err != nil {
			return err
		}
		// AckNone messages lost in transit are never redelivered: a gap in
		// the consumer's sequence means this node missed some, and a new
		// consumer resumes after the last one delivered.
		if md.Sequence.Consumer != delivered+1 || md.Sequence.Stream < *next {
			return fmt.Errorf("delivery gap: consumer sequence %d after %d, stream sequence %d, expected from %d",
				md.Sequence.Consumer, delivered, md.Sequence.Stream, *next)
		}
		if s.ctx.Err() != nil {
			return nil
		}
		delivered, *next = md.Sequence.Consumer, md.Sequence.Stream+1
		s.saw(epoch, md.Sequence.Stream)
		m, err := decodeStored(msg.Data(), md.Sequence.Stream, epoch)
		if err != nil {
			s.log.Warn("dropping undecodable history entry", "seq", md.Sequence.Stream, "err", err)
			continue
		}
		s.ps.LocalBroadcast(m)
	}
}

// restart has the consumer start over now: after a reconnection (the
// server may have lost it) or when the stream was recreated.
func (s *Store) restart() {
	s.mu.Lock()
	if s.it != nil {
		s.it.Stop()
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Store) watch() {
	defer close(s.wdone)
	for {
		select {
		case _, ok := <-s.status:
			if !ok {
				return
			}
			s.restart()
		case <-s.ctx.Done():
			return
		}
	}
}

// Close stops the delivery consumer. Once it returns nothing more is
// delivered, and Publish fails with pubsub.ErrClosed. The connection is
// left open. Close must not be called from a subscriber's Deliver.
func (s *Store) Close() error {
	s.mu.Lock()
	first := !s.closed
	s.closed = true
	if first && s.it != nil {
		s.it.Stop()
	}
	s.mu.Unlock()
	if first {
		s.cancel()
		s.nc.RemoveStatusListener(s.status)
	}
	<-s.done
	<-s.wdone
	return nil
}
