package socket

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/phxgo/phx/socket/protocol"
)

// Errors a connect attempt can fail with, before or in the Authenticator.
var (
	ErrOriginRefused = errors.New("socket: origin not allowed")
	ErrBadVsn        = protocol.ErrBadVsn
	// ErrTooManyConnections refuses connects beyond Config.MaxConnections.
	ErrTooManyConnections = errors.New("socket: too many connections")
	// ErrBusy refuses connects beyond Config.MaxPendingConnects.
	ErrBusy = errors.New("socket: too many connects in progress")
)

// refusalReason names a connect error for metrics.
func refusalReason(err error) string {
	switch {
	case errors.Is(err, ErrOriginRefused):
		return "origin"
	case errors.Is(err, ErrBadVsn):
		return "vsn"
	case errors.Is(err, ErrTooManyConnections):
		return "limit"
	case errors.Is(err, ErrBusy):
		return "busy"
	case errors.Is(err, ErrServerClosed):
		return "shutdown"
	}
	return "auth"
}

// admit counts a connect in progress, or refuses it with ErrBusy; release
// must be called once the connection is registered or refused.
func (s *Server[A]) admit() (release func(), err error) {
	n := s.pending.Add(1)
	if limit := s.cfg.MaxPendingConnects; limit > 0 && n > int64(limit) {
		s.pending.Add(-1)
		return nil, ErrBusy
	}
	return s.releasePending, nil
}

func (s *Server[A]) releasePending() { s.pending.Add(-1) }

// unavailable reports whether a connect error means "try again later"
// (HTTP 503) rather than "refused" (403).
func unavailable(err error) bool {
	return errors.Is(err, ErrTooManyConnections) || errors.Is(err, ErrServerClosed) || errors.Is(err, ErrBusy)
}

// connected is what a successful connect yields, for either transport.
type connected[A any] struct {
	assigns    A
	serializer protocol.Serializer
	socketID   string
	expiry     time.Time
}

// connect runs Phoenix's connect steps in order: params, origin, vsn, the
// Authenticator, the socket id. Any failure means HTTP 403 (LongPoll:
// {"status":403}); the error says why, for logs.
func (s *Server[A]) connect(r *http.Request, transport, authToken string) (connected[A], error) {
	var zero connected[A]
	if s.isShutdown() {
		return zero, ErrServerClosed
	}
	if s.cfg.MaxConnections > 0 && s.Connections() >= s.cfg.MaxConnections {
		return zero, ErrTooManyConnections
	}
	if !s.originAllowed(r) {
		return zero, fmt.Errorf("%w: %q", ErrOriginRefused, r.Header.Get("Origin"))
	}
	params := ParseParams(r.URL.RawQuery)
	raw, present := params["vsn"]
	vsn, isString := raw.(string)
	if present && !isString {
		return zero, fmt.Errorf("%w: vsn is not a string", ErrBadVsn)
	}
	ser, err := protocol.Negotiate(vsn, present)
	if err != nil {
		return zero, err
	}
	req := &ConnectRequest{
		Params:     params,
		Query:      r.URL.Query(),
		Header:     r.Header,
		Origin:     r.Header.Get("Origin"),
		RemoteAddr: r.RemoteAddr,
		AuthToken:  authToken,
		Transport:  transport,
	}
	assigns, err := s.cfg.Authenticator.Authenticate(r.Context(), req)
	if err != nil {
		return zero, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	c := connected[A]{assigns: assigns, serializer: ser, expiry: req.expiry}
	if s.cfg.ID != nil {
		c.socketID = s.cfg.ID(assigns)
	}
	return c, nil
}

func (s *Server[A]) isShutdown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown
}
