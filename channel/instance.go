package channel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/phxgo/phx/socket/protocol"
	"github.com/phxgo/phx/socket/pubsub"
	"github.com/phxgo/phx/socket/pubsub/history"
)

// instance is one joined channel: an actor whose mailbox is drained by a
// goroutine that exists only while there is mail, so an idle channel costs a
// struct, not a goroutine.
type instance[A any] struct {
	s       *Session[A]
	rt      *route[A]
	handler Handler[A]
	topic   string
	joinRef json.RawMessage
	id      string
	ctx     Context[A]

	// Touched only by the callback goroutine.
	curRef     json.RawMessage
	inHandleIn bool

	dead atomic.Bool // set once; after it no mail is accepted

	mu      sync.Mutex
	queue   []mail
	running bool
	exit    *exitPlan // set when the channel must end; run by the drain loop
	exited  bool
	hooks   []func()
	cctx    context.Context
	cancel  context.CancelFunc

	expiry   time.Time   // see Context.SetExpiry
	expTimer *time.Timer // armed while expiry is set

	rec *recoverState // set on recoverable routes, before subscribing
}

type mailKind uint8

const (
	mailIn mailKind = iota
	mailOut
	mailInfo
	mailAfterJoin
	mailLeave
	mailExpire
	mailRepair // info is the history.Position after which broadcasts are missing
)

type mail struct {
	kind mailKind
	msg  protocol.Message
	out  *pubsub.Message
	info any
}

// exitPlan says how a channel ends once its drain loop gets to it.
type exitPlan struct {
	reason    error
	terminate bool
}

func (in *instance[A]) isDead() bool { return in.dead.Load() }

// Deliver implements pubsub.Subscriber: fastlane frames go straight to the
// connection, intercepted events through HandleOut.
func (in *instance[A]) Deliver(m *pubsub.Message) {
	if in.dead.Load() || (m.From != "" && m.From == in.id) {
		return
	}
	if in.rec != nil {
		in.rec.deliver(in, m)
		return
	}
	in.forward(m)
}

// forward hands a broadcast on: to HandleOut if intercepted, else straight
// to the connection.
func (in *instance[A]) forward(m *pubsub.Message) {
	if in.rt.intercepted(m.Event) {
		in.post(mail{kind: mailOut, out: m})
		return
	}
	in.s.sendBroadcast(m)
}

func (in *instance[A]) post(m mail) {
	in.mu.Lock()
	if in.exit != nil || in.exited {
		in.mu.Unlock()
		return
	}
	in.queue = append(in.queue, m)
	in.startLocked()
	in.mu.Unlock()
}

func (in *instance[A]) startLocked() {
	if !in.running {
		in.running = true
		in.s.wg.Add(1)
		go in.drain()
	}
}

// end schedules the channel's end: pending mail is dropped, the drain loop
// runs Terminate (if asked) and the exit hooks. It returns false if the
// channel was already ending.
func (in *instance[A]) end(reason error, terminate bool) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.exit != nil || in.exited {
		return false
	}
	in.dead.Store(true)
	in.exit = &exitPlan{reason: reason, terminate: terminate}
	in.queue = nil
	in.startLocked()
	return true
}

func (in *instance[A]) drain() {
	defer in.s.wg.Done()
	for {
		in.mu.Lock()
		if plan := in.exit; plan != nil {
			in.exit = nil
			in.exited = true
			in.running = false
			hooks := in.hooks
			in.hooks = nil
			cancel := in.cancel
			in.stopExpiryLocked()
			in.mu.Unlock()
			in.finish(plan, hooks, cancel)
			return
		}
		if len(in.queue) == 0 {
			in.running = false
			in.queue = nil
			in.mu.Unlock()
			return
		}
		m := in.queue[0]
		in.queue[0] = mail{}
		in.queue = in.queue[1:]
		in.mu.Unlock()
		in.handle(m)
	}
}

func (in *instance[A]) finish(plan *exitPlan, hooks []func(), cancel context.CancelFunc) {
	in.s.detach(in)
	if plan.terminate {
		if t, ok := in.handler.(Terminator[A]); ok {
			in.call("Terminate", func() (Result, error) {
				t.Terminate(&in.ctx, plan.reason)
				return Result{}, nil
			})
		}
	}
	if cancel != nil {
		cancel()
	}
	for _, h := range hooks {
		in.safeHook(h)
	}
}

func (in *instance[A]) safeHook(h func()) {
	defer func() {
		if v := recover(); v != nil {
			in.s.logger.Error("channel exit hook panicked", "topic", in.topic, "panic", v)
		}
	}()
	h()
}

func (in *instance[A]) onExit(fn func()) {
	in.mu.Lock()
	if in.exited {
		in.mu.Unlock()
		in.safeHook(fn)
		return
	}
	in.hooks = append(in.hooks, fn)
	in.mu.Unlock()
}

func (in *instance[A]) context() context.Context {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cctx == nil {
		in.cctx, in.cancel = context.WithCancel(in.s.cfg.Context)
		if in.exited {
			in.cancel()
		}
	}
	return in.cctx
}

// call runs a callback, turning a panic into a CrashError.
func (in *instance[A]) call(name string, f func() (Result, error)) (res Result, err error) {
	defer func() {
		if v := recover(); v != nil {
			perr, ok := v.(error)
			if !ok {
				perr = fmt.Errorf("%v", v)
			}
			res, err = Result{}, &CrashError{Callback: name, Err: perr, Panic: v, Stack: debug.Stack()}
		}
	}()
	res, err = f()
	if err != nil {
		if _, ok := err.(*CrashError); !ok {
			err = &CrashError{Callback: name, Err: err}
		}
	}
	return res, err
}

func (in *instance[A]) handle(m mail) {
	c := &in.ctx
	switch m.kind {
	case mailIn:
		in.curRef, in.inHandleIn = m.msg.Ref, true
		res, err := in.call("HandleIn", func() (Result, error) {
			return in.handler.HandleIn(c, m.msg.Event, m.msg.Payload)
		})
		in.curRef, in.inHandleIn = nil, false
		in.apply(res, err, m.msg.Ref, true)
	case mailOut:
		h, ok := in.handler.(OutHandler[A])
		if !ok {
			in.s.sendBroadcast(m.out)
			return
		}
		res, err := in.call("HandleOut", func() (Result, error) {
			return h.HandleOut(c, m.out.Event, m.out.Delivered())
		})
		in.apply(res, err, nil, false)
	case mailInfo:
		h, ok := in.handler.(InfoHandler[A])
		if !ok {
			in.s.logger.Warn("channel received a message but has no HandleInfo", "topic", in.topic)
			return
		}
		res, err := in.call("HandleInfo", func() (Result, error) { return h.HandleInfo(c, m.info) })
		in.apply(res, err, nil, false)
	case mailAfterJoin:
		h, ok := in.handler.(AfterJoiner[A])
		if !ok {
			return
		}
		res, err := in.call("AfterJoin", func() (Result, error) { return h.AfterJoin(c) })
		in.apply(res, err, nil, false)
	case mailExpire:
		in.expire()
	case mailRepair:
		in.s.repairGap(in, m.info.(history.Position))
	case mailLeave:
		// Phoenix: reply ok, then phx_close, terminate with {:shutdown, :left}.
		in.s.sendReplyPayload(in.joinRef, m.msg.Ref, in.topic, "ok", Payload{})
		in.stop(Left, true)
	}
}

// apply carries out a callback's Result.
func (in *instance[A]) apply(res Result, err error, ref json.RawMessage, canReply bool) {
	if err != nil {
		in.s.logger.Error("channel crashed", "topic", in.topic, "error", err)
		in.stop(err, true)
		return
	}
	if res.reply && canReply {
		if rerr := in.s.sendReply(in.joinRef, ref, in.topic, res.status, res.resp); rerr != nil {
			// The client got an error reply saying why; a binary reply to a
			// V1 or LongPoll client is the client's choice, not a fault here.
			level := slog.LevelError
			if errors.Is(rerr, protocol.ErrBinaryUnsupported) {
				level = slog.LevelDebug
			}
			in.s.logger.Log(in.context(), level, "channel reply failed", "topic", in.topic, "error", rerr)
		}
	}
	if res.stop {
		in.stop(res.reason, true)
	}
}

// stop ends the channel from its own goroutine: it leaves the connection's
// table at once (so later client messages get "unmatched topic"), tells the
// client phx_close or phx_error, and schedules Terminate.
func (in *instance[A]) stop(reason error, notify bool) {
	if !in.end(reason, true) {
		return
	}
	in.s.detach(in)
	if notify {
		in.s.sendExitFrame(in, reason)
	}
}
