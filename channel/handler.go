package channel

// Handler is a channel's application code. The Router creates one Handler
// value per join; its callbacks run one at a time, so it may keep per-channel
// state in its fields without locks.
type Handler[A any] interface {
	// Join decides whether the client may join c.Topic(). Return OK(reply)
	// (or NoReply(), which means OK with {}) to accept, Error(reply) to
	// refuse. A non-nil error or a panic refuses with {"reason":"join crashed"}.
	// Join cannot push or broadcast to the joining client yet, since the join
	// reply must go first; do that in AfterJoin.
	Join(c *Context[A], params Payload) (Result, error)
	// HandleIn handles an event pushed by the client. A non-nil error or a
	// panic crashes the channel (phx_error to the client).
	HandleIn(c *Context[A], event string, p Payload) (Result, error)
}

// AfterJoiner is implemented by handlers that act right after a successful
// join reply has been queued, such as pushing presence_state (Phoenix's
// send(self(), :after_join) idiom).
type AfterJoiner[A any] interface {
	AfterJoin(c *Context[A]) (Result, error)
}

// OutHandler is implemented by handlers of routes with intercepted events
// (see Intercept). HandleOut runs once per subscribing channel for each
// intercepted broadcast; it pushes (possibly changed) or drops the event.
// Replies in its Result are ignored; Stop works.
type OutHandler[A any] interface {
	HandleOut(c *Context[A], event string, p Payload) (Result, error)
}

// InfoHandler is implemented by handlers that receive messages sent with
// Context.Send, such as results of background work. Replies in its Result
// are ignored; Stop works.
type InfoHandler[A any] interface {
	HandleInfo(c *Context[A], msg any) (Result, error)
}

// Terminator is implemented by handlers that clean up when the channel ends.
// reason is Left, Closed, Shutdown, Inactive, Expired, the reason given to Stop, a
// *CrashError, or Shutdown when the join was refused. Unlike Phoenix,
// Terminate also runs after a crash; it does not run when a duplicate join
// replaces the channel.
type Terminator[A any] interface {
	Terminate(c *Context[A], reason error)
}

// Joined is the non-generic view of a joined channel, for packages such as
// presence that work with channels of any assigns type.
type Joined interface {
	// Topic is the channel's topic.
	Topic() string
	// ID identifies this channel instance uniquely in the cluster.
	ID() string
	// Push sends an event to this channel's client only.
	Push(event string, payload any) error
	// OnExit registers fn to run once when the channel ends, for any reason.
	OnExit(fn func())
}
