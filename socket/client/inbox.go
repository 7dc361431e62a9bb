package client

import (
	"context"
	"slices"
	"sync"
)

// inbox holds what the reader goroutine delivers to a channel, so that the
// reader never runs user code or blocks on a slow consumer: a bounded buffer
// for Next, and a bounded queue drained by a dispatcher goroutine for On
// handlers (started with the first handler). When a buffer is full the
// oldest message is dropped.
type inbox struct {
	c     *Client
	limit int

	mu      sync.Mutex
	buf     []Message     // awaiting Next
	changed chan struct{} // closed and replaced whenever buf or err change
	err     error         // set once no more messages will come

	handlers []*binding
	queue    []Message // awaiting the dispatcher
	wake     chan struct{}
	running  bool
	dropped  int
}

type binding struct {
	event string
	fn    func(Message)
}

func newInbox(c *Client, limit int) *inbox {
	return &inbox{c: c, limit: limit, changed: make(chan struct{}), wake: make(chan struct{}, 1)}
}

func (in *inbox) signalLocked() {
	close(in.changed)
	in.changed = make(chan struct{})
}

func (in *inbox) deliver(m Message) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.err != nil {
		return
	}
	if len(in.buf) >= in.limit {
		in.buf = slices.Delete(in.buf, 0, 1)
	}
	in.buf = append(in.buf, m)
	in.signalLocked()
	if len(in.handlers) == 0 {
		return
	}
	if len(in.queue) >= in.limit {
		in.queue = slices.Delete(in.queue, 0, 1)
		in.dropped++
		in.c.log.Warn("phx client: handler queue full, dropping oldest message", "topic", m.Topic, "dropped", in.dropped)
	}
	in.queue = append(in.queue, m)
	in.poke()
}

func (in *inbox) poke() {
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// finish marks the inbox complete: Next drains what is buffered, then fails
// with err; the dispatcher runs the queued handlers and exits.
func (in *inbox) finish(err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.err != nil {
		return
	}
	in.err = err
	in.signalLocked()
	in.poke()
}

func (in *inbox) next(ctx context.Context, events []string) (Message, error) {
	for {
		in.mu.Lock()
		for i, m := range in.buf {
			if len(events) == 0 || slices.Contains(events, m.Event) {
				in.buf = slices.Delete(in.buf, i, i+1)
				in.mu.Unlock()
				return m, nil
			}
		}
		if err := in.err; err != nil {
			in.mu.Unlock()
			return Message{}, err
		}
		changed := in.changed
		in.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return Message{}, timeoutError("waiting for "+eventsString(events), ctx.Err())
		}
	}
}

func eventsString(events []string) string {
	if len(events) == 0 {
		return "any event"
	}
	s := ""
	for i, e := range events {
		if i > 0 {
			s += "|"
		}
		s += e
	}
	return s
}

func (in *inbox) on(event string, fn func(Message)) func() {
	b := &binding{event: event, fn: fn}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.handlers = append(in.handlers, b)
	if !in.running && in.err == nil {
		// Safe against Close's Wait: finish (which Close does first, under
		// the client lock) sets err under in.mu before Close waits.
		in.running = true
		in.c.wg.Add(1)
		go in.dispatch()
	}
	return func() {
		in.mu.Lock()
		defer in.mu.Unlock()
		in.handlers = slices.DeleteFunc(in.handlers, func(x *binding) bool { return x == b })
	}
}

// dispatch runs handlers, one message at a time, until the inbox is
// finished and its queue is empty.
func (in *inbox) dispatch() {
	defer in.c.wg.Done()
	for {
		in.mu.Lock()
		if len(in.queue) == 0 {
			if in.err != nil {
				in.running = false
				in.mu.Unlock()
				return
			}
			in.mu.Unlock()
			<-in.wake
			continue
		}
		m := in.queue[0]
		in.queue = slices.Delete(in.queue, 0, 1)
		var fns []func(Message)
		for _, b := range in.handlers {
			if b.event == "" || b.event == m.Event {
				fns = append(fns, b.fn)
			}
		}
		in.mu.Unlock()
		for _, fn := range fns {
			fn(m)
		}
	}
}
