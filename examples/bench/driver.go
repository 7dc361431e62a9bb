package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/phxgo/phx/socket/client"
)

// benchConn is one joined socket as the fanout, shout and echo scenarios
// use it, backed by socket/client (default) or by the raw driver.
type benchConn interface {
	// send pushes event without waiting for a reply.
	send(event string, payload []byte) error
	// request pushes event and waits for an ok reply.
	request(ctx context.Context, event string, payload []byte) error
	// failed says why the socket stopped receiving before close was
	// called, or nil: a socket the server dropped must not pass for a
	// generator that merely lost messages.
	failed() error
	close()
}

// onMessage receives every push or broadcast a socket gets, with the time
// it was read. payload is only valid during the call.
type onMessage func(event string, payload []byte, at time.Time)

// openConn connects and joins topic. Messages (not replies) go to on, from
// one goroutine per socket, in order.
func openConn(ctx context.Context, cfg config, hc *http.Client, topic string, buffer int, on onMessage) (benchConn, error) {
	if cfg.driver == "raw" {
		return openRaw(ctx, cfg, hc, topic, on)
	}
	params := map[string]string{}
	for k := range cfg.params {
		params[k] = cfg.params.Get(k)
	}
	c, err := client.Dial(ctx, cfg.url, client.Options{
		Params:     params,
		HTTPClient: hc,
		Timeout:    cfg.timeout,
		// Nothing may be dropped on the generator's side: every message
		// of the run fits in the channel's buffer.
		ChannelBuffer: buffer,
		// A refused or dropped socket is an error of the run, not
		// something to retry quietly.
		ReconnectAfter: func(int) time.Duration { return time.Hour },
	})
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	ch := c.Channel(topic, nil)
	if _, err := ch.Join(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("join %s: %w", topic, err)
	}
	cc := &clientConn{c: c, ch: ch}
	if on != nil {
		// Next, not On: On's queue drops the oldest message when its
		// handler falls behind, and a drop here would count as lost.
		cc.wg.Go(func() {
			for {
				m, err := ch.Next(context.Background())
				if err != nil {
					cc.setFailed(err)
					return
				}
				if m.Event == client.EventJoined {
					continue
				}
				on(m.Event, m.Payload.JSON(), time.Now())
			}
		})
	}
	return cc, nil
}

type clientConn struct {
	c  *client.Client
	ch *client.Channel
	wg sync.WaitGroup

	mu      sync.Mutex
	closing bool
	err     error
}

func (c *clientConn) setFailed(err error) {
	c.mu.Lock()
	if !c.closing && c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
}

func (c *clientConn) failed() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *clientConn) send(event string, payload []byte) error {
	return c.ch.Send(event, json.RawMessage(payload))
}

func (c *clientConn) request(ctx context.Context, event string, payload []byte) error {
	_, err := c.ch.Push(ctx, event, json.RawMessage(payload))
	return err
}

func (c *clientConn) close() {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.c.Close()
	c.wg.Wait()
}

// rawBench is the raw driver behind benchConn: one reader goroutine that
// routes replies to the one request in flight and everything else to on.
type rawBench struct {
	rc      *rawConn
	topic   string
	joinRef string
	replies chan []byte
	done    chan struct{}
	mu      sync.Mutex // serialises request's ref and wait
	closing atomic.Bool
	err     error // why read ended; read only after done is closed
}

func openRaw(ctx context.Context, cfg config, hc *http.Client, topic string, on onMessage) (benchConn, error) {
	rc, err := dialRaw(ctx, hc, cfg.wsURL())
	if err != nil {
		return nil, err
	}
	if err := rc.join(ctx, topic); err != nil {
		rc.close()
		return nil, err
	}
	b := &rawBench{rc: rc, topic: topic, joinRef: "1", replies: make(chan []byte, 1), done: make(chan struct{})}
	go b.read(on)
	return b, nil
}

var replyMarker = []byte(`"phx_reply",`)

func (b *rawBench) read(on onMessage) {
	defer close(b.done)
	// One buffer per socket for its whole life: allocating per message made
	// the generator collect garbage every few broadcasts, and its pauses
	// showed up in the servers' tail latency.
	buf := make([]byte, 0, 1024)
	for {
		var err error
		if buf, err = b.rc.readInto(buf[:0]); err != nil {
			if !b.closing.Load() {
				b.err = fmt.Errorf("socket stopped receiving: %w", err)
			}
			return
		}
		data := buf
		at := time.Now()
		// [join_ref,ref,"topic","event",payload]: the event is the fourth
		// element, after the quoted topic.
		i := bytes.Index(data, []byte(`"`+b.topic+`",`))
		if i < 0 {
			continue // heartbeat replies (topic "phoenix")
		}
		rest := data[i+len(b.topic)+3:]
		if bytes.HasPrefix(rest, replyMarker) {
			select {
			case b.replies <- bytes.Clone(data): // the waiter outlives buf's contents
			default:
			}
			continue
		}
		if on == nil || len(rest) < 2 || rest[0] != '"' {
			continue
		}
		end := bytes.IndexByte(rest[1:], '"')
		if end < 0 {
			continue
		}
		event := string(rest[1 : end+1])
		payload := rest[end+3 : len(rest)-1]
		on(event, payload, at)
	}
}

func (b *rawBench) frame(ref, event string, payload []byte) []byte {
	f := make([]byte, 0, len(payload)+len(b.topic)+len(event)+32)
	f = append(f, `["`+b.joinRef+`",`...)
	if ref == "" {
		f = append(f, "null"...)
	} else {
		f = strconv.AppendQuote(f, ref)
	}
	f = append(f, `,"`+b.topic+`","`+event+`",`...)
	f = append(f, payload...)
	return append(f, ']')
}

func (b *rawBench) send(event string, payload []byte) error {
	return b.rc.ws.Write(context.Background(), websocket.MessageText, b.frame("", event, payload))
}

var errReply = errors.New("reply status is not ok")

func (b *rawBench) request(ctx context.Context, event string, payload []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	ref := strconv.FormatUint(b.rc.ref.Add(1), 10)
	if err := b.rc.ws.Write(ctx, websocket.MessageText, b.frame(ref, event, payload)); err != nil {
		return err
	}
	want := []byte(`"` + ref + `","` + b.topic + `"`)
	for {
		select {
		case r := <-b.replies:
			if !bytes.Contains(r, want) {
				continue // a late reply of an earlier, timed-out request
			}
			if !bytes.Contains(r, []byte(`"status":"ok"`)) {
				return fmt.Errorf("%w: %.200s", errReply, r)
			}
			return nil
		case <-b.done:
			return errors.New("connection closed")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (b *rawBench) failed() error {
	select {
	case <-b.done:
		return b.err
	default:
		return nil
	}
}

func (b *rawBench) close() {
	b.closing.Store(true)
	b.rc.close()
	<-b.done
}

// heartbeats keeps raw sockets alive past the server's idle timeout, like
// phoenix.js: one heartbeat per socket per interval, from one goroutine.
func heartbeats(ctx context.Context, conns []benchConn) {
	var raws []*rawConn
	for _, c := range conns {
		if r, ok := c.(*rawBench); ok {
			raws = append(raws, r.rc)
		}
	}
	if len(raws) == 0 {
		return
	}
	tick := time.NewTicker(max(heartbeatInterval/time.Duration(len(raws)), time.Millisecond))
	defer tick.Stop()
	for i := 0; ; i = (i + 1) % len(raws) {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			_ = raws[i].heartbeat(ctx)
		}
	}
}

// openMany opens n sockets on topic with bounded concurrency. on gets the
// index of the socket that received a message.
func openMany(ctx context.Context, cfg config, n int, topic string, buffer int, on func(i int, event string, payload []byte, at time.Time)) ([]benchConn, error) {
	conns := make([]benchConn, n)
	hc := httpClientFrom(cfg.srcIP(0))
	defer hc.CloseIdleConnections()
	var mu sync.Mutex
	var fe firstErr
	sem := make(chan struct{}, max(1, cfg.concurrency))
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			var cb onMessage
			if on != nil {
				cb = func(event string, payload []byte, at time.Time) { on(i, event, payload, at) }
			}
			jctx, cancel := context.WithTimeout(ctx, cfg.timeout)
			defer cancel()
			c, err := openConn(jctx, cfg, hc, topic, buffer, cb)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fe.set(err)
				return
			}
			conns[i] = c
		})
	}
	wg.Wait()
	if fe.err != nil {
		closeAll(conns)
		return nil, fe.err
	}
	return conns, nil
}

func closeAll(conns []benchConn) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, c := range conns {
		if c == nil {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c.close()
		})
	}
	wg.Wait()
}

// intField reads the integer value of "key": in a flat JSON object the
// tool itself wrote; cheap, so the generator spends its cycles on sockets.
func intField(b []byte, key string) (int64, bool) {
	i := bytes.Index(b, []byte(`"`+key+`":`))
	if i < 0 {
		return 0, false
	}
	b = b[i+len(key)+3:]
	var v int64
	n := 0
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		v = v*10 + int64(b[n]-'0')
		n++
	}
	return v, n > 0
}

// benchPayload is a JSON object of exactly size bytes (or the smallest that
// holds the fields) with the given integer fields first.
func benchPayload(size int, fields ...any) []byte {
	b := []byte{'{'}
	for i := 0; i+1 < len(fields); i += 2 {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, fields[i].(string)...)
		b = append(b, `":`...)
		b = strconv.AppendInt(b, fields[i+1].(int64), 10)
	}
	if len(b) > 1 {
		b = append(b, ',')
	}
	b = append(b, `"pad":"`...)
	for len(b) < size-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// checkFailed counts the sockets that stopped receiving during the run as
// errors of res, keeping the first reason.
func checkFailed(res *Result, fe *firstErr, conns []benchConn) {
	for _, c := range conns {
		if err := c.failed(); err != nil {
			res.Errors++
			fe.set(err)
		}
	}
}
