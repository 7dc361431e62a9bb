package socket

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/socket/protocol"
	"github.com/phxgo/phx/socket/pubsub"
	"github.com/phxgo/phx/transport"
)

// Defaults of the LongPoll settings in Config.
const (
	// DefaultLongPollWindow is how long a poll is held waiting for frames
	// (Phoenix's window_ms). A session expires after 1.5 windows without a
	// poll.
	DefaultLongPollWindow = 10 * time.Second
	// DefaultLongPollTokenMaxAge is how long a session token stays valid
	// (Phoenix's 14 days); sessions normally expire long before.
	DefaultLongPollTokenMaxAge = 14 * 24 * time.Hour
	// DefaultLongPollGoneDelay is how long a request carrying the valid
	// token of a session that has ended waits before it is answered
	// (Phoenix's pubsub_timeout_ms, the time Phoenix spends looking for the
	// session's process). phoenix.js 1.7 depends on this order of answers
	// to rejoin its channels; see Config.LongPollGoneDelay.
	DefaultLongPollGoneDelay = 2 * time.Second
)

// longPollRelayTimeout bounds the wait for the owner of a session on another
// node to acknowledge a relayed request (Phoenix's pubsub_timeout_ms): no
// acknowledgement means the session is gone.
const longPollRelayTimeout = 2 * time.Second

// Header names of the LongPoll transport.
const (
	headerLongPollToken = "X-Phoenix-Longpoll-Token"
	headerAuthToken     = "X-Phoenix-Authtoken"
)

// closeInactive ends a LongPoll session that nobody polls any more.
var closeInactive = closeCause{transport.StatusGoingAway, "longpoll session inactive", channel.Inactive}

// longPoller serves the LongPoll transport: it owns this Server's sessions,
// signs and checks their tokens, and relays requests for sessions owned by
// other nodes through the PubSub, so that no sticky routing is needed.
type longPoller[A any] struct {
	s      *Server[A]
	key    []byte
	owner  string // node name + per-Server instance, carried in tokens
	window time.Duration
	maxAge time.Duration
	gone   time.Duration // Config.LongPollGoneDelay

	ctx    context.Context // cancelled at shutdown: ends relayed requests
	cancel context.CancelFunc

	mu       sync.Mutex
	sessions map[string]*lpSession[A]
	closed   bool
	wg       sync.WaitGroup // goroutines serving relayed requests
}

func newLongPoller[A any](s *Server[A]) *longPoller[A] {
	lp := &longPoller[A]{
		s:        s,
		key:      s.cfg.LongPollKey,
		owner:    s.node + "#" + randomHex(6),
		window:   s.cfg.LongPollWindow,
		maxAge:   s.cfg.LongPollTokenMaxAge,
		gone:     s.cfg.LongPollGoneDelay,
		sessions: make(map[string]*lpSession[A]),
	}
	if len(lp.key) == 0 {
		lp.key = make([]byte, 32)
		_, _ = rand.Read(lp.key)
	}
	lp.ctx, lp.cancel = context.WithCancel(context.Background())
	return lp
}

// shutdown stops serving relayed requests and creating sessions; the
// sessions themselves are connections, closed by Shutdown with the others.
func (lp *longPoller[A]) shutdown() {
	lp.mu.Lock()
	lp.closed = true
	lp.mu.Unlock()
	lp.cancel()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// serveLongPoll answers M/longpoll as Phoenix does (phoenix-protocol.md 6.2):
// every answer phoenix.js reads is HTTP 200 with the outcome in a JSON body.
func (s *Server[A]) serveLongPoll(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if !s.originAllowed(r) {
		s.logger.Info("longpoll origin refused", "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"))
		s.cfg.Metrics.ConnectRefused("longpoll", "origin")
		writeLongPoll(w, http.StatusOK, lpStatus{Status: 403})
		return
	}
	switch r.Method {
	case http.MethodOptions:
		h := w.Header()
		h.Set("Access-Control-Allow-Headers", strings.Join(r.Header.Values("Access-Control-Request-Headers"), ", "))
		h.Set("Access-Control-Allow-Methods", "get, post, options")
		h.Set("Access-Control-Max-Age", "3600")
		w.WriteHeader(http.StatusOK)
	case http.MethodGet:
		s.longpoll.get(w, r)
	case http.MethodPost:
		s.longpoll.post(w, r)
	default:
		w.WriteHeader(http.StatusBadRequest)
	}
}

// lpStatus is an answer with a status only (POST results, 403).
type lpStatus struct {
	Status int `json:"status"`
}

// lpPoll is the answer to a GET.
type lpPoll struct {
	Status   int      `json:"status"`
	Token    string   `json:"token"`
	Messages []string `json:"messages"`
}

func writeLongPoll(w http.ResponseWriter, code int, body any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // Phoenix does not escape HTML; the client parses either way
	_ = enc.Encode(body)
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func writePoll(w http.ResponseWriter, status int, token string, messages []string) {
	if messages == nil {
		messages = []string{}
	}
	w.Header().Set(headerLongPollToken, token)
	w.Header().Set("Access-Control-Expose-Headers", headerLongPollToken)
	writeLongPoll(w, http.StatusOK, lpPoll{Status: status, Token: token, Messages: messages})
}

// requestToken is the session token of a request: the X-Phoenix-Longpoll-Token
// header (Phoenix 1.8.10+, phoenix.js 1.9) wins over the query; in the query
// the last "token" wins, because phoenix.js appends the session token after
// the user's params, which often have a "token" of their own.
func requestToken(r *http.Request) string {
	if t := r.Header.Get(headerLongPollToken); t != "" {
		return t
	}
	q, _ := url.ParseQuery(r.URL.RawQuery)
	if v := q["token"]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

// get serves a GET: a poll of a valid session, or a new session.
func (lp *longPoller[A]) get(w http.ResponseWriter, r *http.Request) {
	tok := requestToken(r)
	owner, sid, valid := lp.verify(tok)
	if valid {
		if owner == lp.owner {
			if ls := lp.lookup(sid); ls != nil {
				status, msgs := ls.poll(r.Context())
				if status == statusAbort {
					panic(http.ErrAbortHandler)
				}
				writePoll(w, status, tok, msgs)
				return
			}
			if !lp.awaitGone(r.Context()) {
				panic(http.ErrAbortHandler)
			}
		} else if res, ok := lp.relay(r.Context(), sid, lpRelayRequest{Op: "poll"}); ok {
			if res.Status == statusAbort {
				panic(http.ErrAbortHandler) // the owner is shutting down
			}
			writePoll(w, res.Status, tok, res.Messages)
			return
		}
	}
	lp.create(w, r, lp.queryHasSessionToken(r))
}

// statusAbort is the poll outcome that drops the HTTP connection instead of
// answering, as a node going down does: every Phoenix client then reconnects
// and rejoins.
const statusAbort = -1

// awaitGone delays the answer to a request for one of this node's sessions
// that has ended, as Phoenix does (DefaultLongPollGoneDelay). It returns
// false when the request should be dropped: the server is shutting down.
func (lp *longPoller[A]) awaitGone(ctx context.Context) bool {
	if lp.gone <= 0 {
		return !lp.isClosed()
	}
	t := time.NewTimer(lp.gone)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return true // the answer goes nowhere; keep it cheap
	case <-lp.ctx.Done():
		return false
	}
}

func (lp *longPoller[A]) isClosed() bool {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return lp.closed
}

// queryHasSessionToken reports whether the last "token" query parameter is a
// session token of this cluster (rather than the user's own "token" param).
func (lp *longPoller[A]) queryHasSessionToken(r *http.Request) bool {
	q, _ := url.ParseQuery(r.URL.RawQuery)
	v := q["token"]
	if len(v) == 0 {
		return false
	}
	_, _, ok := lp.verify(v[len(v)-1])
	return ok
}

// create runs the connect steps and opens a session, answering 410 with its
// token (the "here is your session" answer) or 403. When the query ends with
// the token of a session that is gone, that token is dropped first so that
// the connect sees the same params as the first GET did.
func (lp *longPoller[A]) create(w http.ResponseWriter, r *http.Request, stripToken bool) {
	s := lp.s
	if stripToken {
		r = withoutLastToken(r)
	}
	release, err := s.admit()
	if err != nil {
		s.logger.Info("longpoll connect refused", "remote", r.RemoteAddr, "error", err)
		s.cfg.Metrics.ConnectRefused("longpoll", refusalReason(err))
		// phoenix.js closes for good on 403 but retries, with its
		// reconnect backoff, on 500.
		writeLongPoll(w, http.StatusOK, lpStatus{Status: 500})
		return
	}
	defer release()
	cd, err := s.connect(r, "longpoll", r.Header.Get(headerAuthToken))
	if err != nil {
		s.logger.Info("longpoll connect refused", "remote", r.RemoteAddr, "error", err)
		s.cfg.Metrics.ConnectRefused("longpoll", refusalReason(err))
		writeLongPoll(w, http.StatusOK, lpStatus{Status: 403})
		return
	}
	// phoenix.js encodes LongPoll frames with V2 whatever vsn says.
	cd.serializer = longPollSerializer{protocol.V2}

	sid := randomHex(16)
	ls := &lpSession[A]{lp: lp, id: sid, topic: "phx:lp:" + sid, lastPoll: time.Now()}
	ls.token = lp.sign(sid, time.Now())
	ls.t = transport.NewLongPoll(transport.LongPollOptions{
		MaxBuffered: s.cfg.OutboundQueue,
		OnClose:     func(transport.StatusCode, string) { ls.onClose() },
		OnDropBinary: func(data []byte) {
			s.logger.Debug("binary frame not sent to a longpoll client", "socket_id", cd.socketID, "bytes", len(data))
			s.cfg.Metrics.Dropped("longpoll", "binary")
		},
	})
	c := s.newConn(ls.t, cd, "longpoll")
	if c == nil {
		_ = ls.t.CloseNow()
		writeLongPoll(w, http.StatusOK, lpStatus{Status: 403})
		return
	}
	ls.c = c
	s.ps.Subscribe(ls.topic, ls)
	ls.mu.Lock()
	ls.timer = time.AfterFunc(lp.expiry(), ls.checkExpiry)
	ls.mu.Unlock()
	lp.mu.Lock()
	lp.sessions[sid] = ls
	lp.mu.Unlock()
	select {
	case <-ls.t.Done():
		// Closed before it was listed (Disconnect, Shutdown): onClose ran too early to unlist it.
		ls.onClose()
	default:
	}
	go c.readLoop() // newConn took its count of s.wg
	writePoll(w, 410, ls.token, nil)
}

// withoutLastToken returns r with the last "token" query parameter removed.
func withoutLastToken(r *http.Request) *http.Request {
	parts := strings.Split(r.URL.RawQuery, "&")
	for i := len(parts) - 1; i >= 0; i-- {
		key, _, _ := strings.Cut(parts[i], "=")
		if k, err := url.QueryUnescape(key); err == nil && k == "token" {
			parts = append(parts[:i], parts[i+1:]...)
			break
		}
	}
	r2 := r.WithContext(r.Context())
	u := *r.URL
	u.RawQuery = strings.Join(parts, "&")
	r2.URL = &u
	return r2
}

// post serves a POST: the frames go to the session, in order.
func (lp *longPoller[A]) post(w http.ResponseWriter, r *http.Request) {
	owner, sid, valid := lp.verify(requestToken(r))
	if !valid {
		writeLongPoll(w, http.StatusOK, lpStatus{Status: 410})
		return
	}
	var ls *lpSession[A]
	if owner == lp.owner {
		if ls = lp.lookup(sid); ls == nil {
			if !lp.awaitGone(r.Context()) {
				panic(http.ErrAbortHandler)
			}
			writeLongPoll(w, http.StatusOK, lpStatus{Status: 410})
			return
		}
	}
	// MaxFrameSize caps the whole body, as Plug's read limit does in Phoenix;
	// over it, HTTP 400 like Plug (the session stays, unaffected).
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, lp.s.cfg.MaxFrameSize))
	if err != nil {
		lp.s.logger.Info("longpoll body refused", "remote", r.RemoteAddr, "error", err)
		writeLongPoll(w, http.StatusBadRequest, lpStatus{Status: 400})
		return
	}
	frames, perr := transport.ParseLongPollBody(r.Header.Get("Content-Type"), body)
	var status int
	if ls != nil {
		status = ls.deliver(r.Context(), frames, perr)
	} else {
		req := lpRelayRequest{Op: "post", BadLine: perr != nil}
		for _, f := range frames {
			req.Frames = append(req.Frames, lpRelayFrame{Data: f.Data, Binary: f.Binary})
		}
		res, ok := lp.relay(r.Context(), sid, req)
		status = res.Status
		if !ok {
			status = 410
		}
	}
	writeLongPoll(w, http.StatusOK, lpStatus{Status: status})
}

func (lp *longPoller[A]) lookup(sid string) *lpSession[A] {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return lp.sessions[sid]
}

// expiry is how long a session lives without polls: 1.5 windows, as in Phoenix.
func (lp *longPoller[A]) expiry() time.Duration { return lp.window * 3 / 2 }

// A session token is "v1.<base64url owner>.<session id>.<unix seconds>.<base64url
// HMAC-SHA256 of everything before>": opaque to the client, URL-safe, and
// naming the owner so that any node can route the request.
func (lp *longPoller[A]) sign(sid string, at time.Time) string {
	payload := "v1." + base64.RawURLEncoding.EncodeToString([]byte(lp.owner)) + "." + sid + "." +
		strconv.FormatInt(at.Unix(), 10)
	return payload + "." + base64.RawURLEncoding.EncodeToString(lp.mac(payload))
}

func (lp *longPoller[A]) mac(payload string) []byte {
	m := hmac.New(sha256.New, lp.key)
	m.Write([]byte("phx longpoll session\x00"))
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// verify checks a token's signature and age; anything else (the user's own
// "token" param on a first GET, a forged or expired token) is not a session.
func (lp *longPoller[A]) verify(tok string) (owner, sid string, ok bool) {
	i := strings.LastIndexByte(tok, '.')
	if i < 0 || len(tok) > 1024 {
		return "", "", false
	}
	payload := tok[:i]
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil || !hmac.Equal(sig, lp.mac(payload)) {
		return "", "", false
	}
	parts := strings.Split(payload, ".")
	if len(parts) != 4 || parts[0] != "v1" {
		return "", "", false
	}
	o, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", "", false
	}
	at, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil || time.Since(time.Unix(at, 0)) > lp.maxAge {
		return "", "", false
	}
	return string(o), parts[2], true
}

// lpSession is one LongPoll session owned by this node: the transport, the
// connection running the protocol over it, and its expiry.
type lpSession[A any] struct {
	lp    *longPoller[A]
	id    string
	topic string // private PubSub topic for requests relayed from other nodes
	token string
	t     *transport.LongPoll
	c     *conn[A]

	mu       sync.Mutex
	lastPoll time.Time
	polls    int // polls in progress; a held poll keeps the session alive
	timer    *time.Timer
	closed   bool
	relays   map[string]context.CancelFunc // relayed polls by reply topic
}

// poll waits for frames and returns the answer's status and messages.
//
// A session that ends while its poll is held does not end the poll: as in
// Phoenix, whose poll waits for messages from a process that is gone, the
// poll runs out its window and answers 204. The client's next request then
// meets the gone session (DefaultLongPollGoneDelay). That order matters to
// phoenix.js 1.7: an early 410 makes it adopt a fresh session without
// rejoining its channels, while a POST answered 410 makes it reconnect and
// rejoin. A server shutdown instead drops the held poll at once
// (statusAbort), so that clients move to another node without waiting.
func (ls *lpSession[A]) poll(ctx context.Context) (int, []string) {
	start := time.Now()
	ls.mu.Lock()
	ls.polls++
	ls.lastPoll = start
	ls.mu.Unlock()
	defer func() {
		ls.mu.Lock()
		ls.polls--
		ls.lastPoll = time.Now()
		ls.mu.Unlock()
	}()
	frames, err := ls.t.Poll(ctx, ls.lp.window)
	switch {
	case errors.Is(err, transport.ErrClosed):
		return ls.outlive(ctx, start), nil
	case err != nil || len(frames) == 0:
		// Also for a superseded poll: the newer one gets the frames.
		return 204, nil
	}
	msgs := make([]string, len(frames))
	for i, f := range frames {
		msgs[i] = string(f)
	}
	return 200, msgs
}

// outlive holds the poll of an ended session until its window ends.
func (ls *lpSession[A]) outlive(ctx context.Context, start time.Time) int {
	if ls.c.closedBy().code == closeShutdown.code {
		return statusAbort
	}
	t := time.NewTimer(time.Until(start.Add(ls.lp.window)))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-ls.lp.ctx.Done():
		return statusAbort
	}
	return 204
}

// deliver hands a POST's frames to the session and returns the POST's status.
func (ls *lpSession[A]) deliver(ctx context.Context, frames []transport.Frame, parseErr error) int {
	n, err := ls.t.Deliver(ctx, frames, ls.lp.window)
	switch {
	case err == nil && parseErr != nil:
		// An undecodable line ends the session like an undecodable frame.
		ls.lp.s.logger.Info("closing longpoll session on a malformed line", "error", parseErr)
		ls.c.closeWith(closeCause{transport.StatusInvalidPayload, "malformed longpoll line", channel.Closed})
		return 408
	case err == nil:
		return 200
	case errors.Is(err, transport.ErrClosed) && n == 0:
		return 410
	default:
		return 408
	}
}

// checkExpiry ends the session once no poll has come for 1.5 windows.
// phoenix.js sends no heartbeats over LongPoll, so polls are the only sign
// of life (the server's idle sweeper skips LongPoll connections).
func (ls *lpSession[A]) checkExpiry() {
	ls.mu.Lock()
	if ls.closed {
		ls.mu.Unlock()
		return
	}
	left := ls.lp.expiry() - time.Since(ls.lastPoll)
	if ls.polls > 0 {
		left = ls.lp.expiry()
	}
	if left > 0 {
		ls.timer.Reset(left)
		ls.mu.Unlock()
		return
	}
	ls.mu.Unlock()
	ls.c.closeWith(closeInactive)
}

// onClose forgets a session once its transport has closed; the next request
// for it gets 410 (POST) or a new session (GET).
func (ls *lpSession[A]) onClose() {
	lp := ls.lp
	lp.mu.Lock()
	if lp.sessions[ls.id] == ls {
		delete(lp.sessions, ls.id)
	}
	lp.mu.Unlock()
	lp.s.ps.Unsubscribe(ls.topic, ls)
	ls.mu.Lock()
	ls.closed = true
	if ls.timer != nil {
		ls.timer.Stop()
	}
	for _, cancel := range ls.relays {
		cancel()
	}
	ls.relays = nil
	ls.mu.Unlock()
}

// longPollSerializer is V2 for a transport that cannot carry binary frames
// to the client: a binary reply becomes an error reply (the Session does
// that on an encoding error) and a binary push fails with
// protocol.ErrBinaryUnsupported. Broadcasts keep V2's encoding because the
// frame cache of a broadcast is per serializer ID, shared with WebSocket V2
// clients; the LongPoll transport drops their binary frames.
type longPollSerializer struct{ protocol.Serializer }

func (l longPollSerializer) EncodePush(dst []byte, joinRef, ref json.RawMessage, topic, event string, p protocol.Payload) ([]byte, bool, error) {
	if p.IsBinary() {
		return dst, false, protocol.ErrBinaryUnsupported
	}
	return l.Serializer.EncodePush(dst, joinRef, ref, topic, event, p)
}

func (l longPollSerializer) EncodeReply(dst []byte, joinRef, ref json.RawMessage, topic, status string, p protocol.Payload) ([]byte, bool, error) {
	if p.IsBinary() {
		return dst, false, protocol.ErrBinaryUnsupported
	}
	return l.Serializer.EncodeReply(dst, joinRef, ref, topic, status, p)
}

// Relaying. A request for a session owned by another node is published on
// the session's private topic "phx:lp:<id>" with a reply topic unique to the
// request; the owner acknowledges at once ("ack"), serves the request as if
// it were local, and publishes the answer ("result"). No acknowledgement
// within longPollRelayTimeout means the session is gone.

type lpRelayRequest struct {
	Op      string         `json:"op"` // "poll", "post" or "cancel"
	Reply   string         `json:"reply"`
	Frames  []lpRelayFrame `json:"frames,omitempty"`
	BadLine bool           `json:"bad_line,omitempty"` // the body had an undecodable line after Frames
}

type lpRelayFrame struct {
	Data   []byte `json:"d"`
	Binary bool   `json:"b,omitempty"`
}

type lpRelayResult struct {
	Status   int      `json:"status"`
	Messages []string `json:"messages,omitempty"`
}

// relay sends req to the owner of session sid and waits for its answer; ok
// is false when no owner acknowledged it.
func (lp *longPoller[A]) relay(ctx context.Context, sid string, req lpRelayRequest) (lpRelayResult, bool) {
	ps := lp.s.ps
	req.Reply = "phx:lp:r:" + lp.owner + ":" + randomHex(8)
	sub := &lpReplySub{ch: make(chan *pubsub.Message, 2)}
	ps.Subscribe(req.Reply, sub)
	defer ps.Unsubscribe(req.Reply, sub)
	if err := lp.publish(ctx, "phx:lp:"+sid, req.Op, req); err != nil {
		lp.s.logger.Info("longpoll relay failed", "error", err)
		return lpRelayResult{}, false
	}
	timer := time.NewTimer(longPollRelayTimeout)
	defer timer.Stop()
	acked := false
	for {
		select {
		case m := <-sub.ch:
			if m.Event == "ack" {
				if !acked {
					acked = true
					// The owner holds a poll for up to a window and a POST
					// for up to a window in total.
					timer.Reset(lp.window + longPollRelayTimeout)
				}
				continue
			}
			var res lpRelayResult
			if err := json.Unmarshal(m.Payload.JSON(), &res); err != nil {
				return lpRelayResult{Status: 500}, true
			}
			return res, true
		case <-timer.C:
			if !acked {
				return lpRelayResult{}, false
			}
			if req.Op == "poll" {
				return lpRelayResult{Status: 204}, true
			}
			return lpRelayResult{Status: 408}, true
		case <-ctx.Done():
			if acked && req.Op == "poll" {
				// Stop the owner's poll so that it does not take frames
				// for a client that is gone.
				cctx, cancel := context.WithTimeout(lp.ctx, longPollRelayTimeout)
				_ = lp.publish(cctx, "phx:lp:"+sid, "cancel", lpRelayRequest{Op: "cancel", Reply: req.Reply})
				cancel()
			}
			return lpRelayResult{Status: 408}, true
		case <-lp.ctx.Done():
			return lpRelayResult{}, false
		}
	}
}

func (lp *longPoller[A]) publish(ctx context.Context, topic, event string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return lp.s.ps.Broadcast(ctx, &pubsub.Message{Topic: topic, Event: event, Payload: protocol.JSONPayload(data)})
}

// lpReplySub collects the answers to one relayed request.
type lpReplySub struct{ ch chan *pubsub.Message }

// Deliver implements pubsub.Subscriber.
func (s *lpReplySub) Deliver(m *pubsub.Message) {
	select {
	case s.ch <- m:
	default: // an ack and a result at most; anything more is a duplicate
	}
}

// Deliver implements pubsub.Subscriber: it receives the requests other nodes
// relay for this session, and serves each on its own goroutine because a
// poll blocks for up to a window.
func (ls *lpSession[A]) Deliver(m *pubsub.Message) {
	var req lpRelayRequest
	if err := json.Unmarshal(m.Payload.JSON(), &req); err != nil || req.Reply == "" {
		return
	}
	lp := ls.lp
	if req.Op == "cancel" {
		ls.mu.Lock()
		if cancel := ls.relays[req.Reply]; cancel != nil {
			cancel()
		}
		ls.mu.Unlock()
		return
	}
	if req.Op != "poll" && req.Op != "post" {
		return
	}
	lp.mu.Lock()
	if lp.closed {
		lp.mu.Unlock()
		return
	}
	lp.wg.Add(1)
	lp.mu.Unlock()
	go func() {
		defer lp.wg.Done()
		ls.serveRelay(req)
	}()
}

func (ls *lpSession[A]) serveRelay(req lpRelayRequest) {
	lp := ls.lp
	ctx, cancel := context.WithCancel(lp.ctx)
	defer cancel()
	ls.mu.Lock()
	if ls.closed {
		ls.mu.Unlock()
		return // no ack: the requester treats the session as gone
	}
	if ls.relays == nil {
		ls.relays = make(map[string]context.CancelFunc)
	}
	ls.relays[req.Reply] = cancel
	ls.mu.Unlock()
	defer func() {
		ls.mu.Lock()
		delete(ls.relays, req.Reply)
		ls.mu.Unlock()
	}()

	pctx, pcancel := context.WithTimeout(ctx, longPollRelayTimeout)
	err := lp.publish(pctx, req.Reply, "ack", struct{}{})
	pcancel()
	if err != nil {
		return
	}
	var res lpRelayResult
	switch req.Op {
	case "poll":
		res.Status, res.Messages = ls.poll(ctx)
	case "post":
		frames := make([]transport.Frame, len(req.Frames))
		for i, f := range req.Frames {
			frames[i] = transport.Frame{Data: f.Data, Binary: f.Binary}
		}
		var parseErr error
		if req.BadLine {
			parseErr = transport.ErrBadLongPollLine
		}
		res.Status = ls.deliver(ctx, frames, parseErr)
	}
	pctx, pcancel = context.WithTimeout(lp.ctx, longPollRelayTimeout)
	defer pcancel()
	if err := lp.publish(pctx, req.Reply, "result", res); err != nil {
		lp.s.logger.Info("longpoll relay answer failed", "error", err)
	}
}
