package supabase

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/phxgo/phx/socket"
)

// Limits of BroadcastHandler.
const (
	// MaxRESTBody bounds a REST broadcast request body.
	MaxRESTBody = 1 << 20
	// MaxRESTMessages bounds the messages of one request.
	MaxRESTMessages = 100
)

// Broadcaster is what BroadcastHandler sends through: *socket.Server.
type Broadcaster interface {
	Broadcast(ctx context.Context, topic, event string, payload any) error
}

// BroadcastHandler serves Supabase's REST broadcast, POST with
//
//	{"messages": [{"topic": "room1", "event": "e", "payload": {...}, "private": false}]}
//
// authorized by a token in "Authorization: Bearer" or the "apikey" header,
// which v verifies; a private message also needs authorize (nil refuses
// them). Every message reaches the subscribers of "realtime:<topic>" on every
// node in realtime-js's broadcast shape. The answer is 202 Accepted, as
// Supabase's; 401 for a bad token, 403 for an unauthorized private message
// (no message of that request is sent), 400 for a malformed body.
func BroadcastHandler(b Broadcaster, v Verifier, authorize func(ctx context.Context, req AuthorizeRequest) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if token == "" {
			token = r.Header.Get("apikey")
		}
		claims, err := v.Verify(r.Context(), token)
		if err != nil {
			writeError(w, http.StatusUnauthorized, tokenReason(err))
			return
		}
		var body struct {
			Messages []struct {
				Topic   string          `json:"topic"`
				Event   string          `json:"event"`
				Payload json.RawMessage `json:"payload"`
				Private bool            `json:"private"`
			} `json:"messages"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, MaxRESTBody)).Decode(&body); err != nil {
			writeError(w, http.StatusBadRequest, `body must be {"messages": [...]}`)
			return
		}
		if len(body.Messages) == 0 || len(body.Messages) > MaxRESTMessages {
			writeError(w, http.StatusBadRequest, "between 1 and 100 messages per request")
			return
		}
		for _, m := range body.Messages {
			if m.Topic == "" || m.Event == "" {
				writeError(w, http.StatusBadRequest, "every message needs a topic and an event")
				return
			}
			if m.Private && (authorize == nil || authorize(r.Context(), AuthorizeRequest{Topic: m.Topic, Claims: claims}) != nil) {
				writeError(w, http.StatusForbidden, unauthorized(m.Topic))
				return
			}
		}
		for _, m := range body.Messages {
			payload := m.Payload
			if len(payload) == 0 {
				payload = json.RawMessage(`{}`)
			}
			if err := Send(r.Context(), b, m.Topic, m.Event, payload); err != nil {
				writeError(w, http.StatusInternalServerError, err.Error())
				return
			}
		}
		w.WriteHeader(http.StatusAccepted)
	})
}

// Send broadcasts event with payload to the realtime-js subscribers of
// topic ("room1", without the "realtime:" prefix) on every node, in the shape
// their on("broadcast", {event}) callbacks receive: the server-side
// counterpart of channel.send.
func Send(ctx context.Context, b Broadcaster, topic, event string, payload any) error {
	return b.Broadcast(ctx, TopicPrefix+topic, "broadcast", map[string]any{"type": "broadcast", "event": event, "payload": payload})
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

// Authenticator verifies the apikey connect param with v (Supabase clients
// send their project's API key, itself a JWT) and makes its claims the
// connection's assigns. Its expiry is not enforced on the socket: API keys
// are long-lived, and each channel's access token has its own.
func Authenticator(v Verifier) socket.Authenticator[Claims] {
	return socket.AuthenticatorFunc[Claims](func(ctx context.Context, req *socket.ConnectRequest) (Claims, error) {
		key := req.Params.Get("apikey")
		if key == "" {
			return nil, errors.New("supabase: no apikey param")
		}
		return v.Verify(ctx, key)
	})
}
