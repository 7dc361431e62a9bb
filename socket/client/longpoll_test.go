package client_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phxgo/phx/socket/client"
)

// fakeLongPoll is a minimal LongPoll server (phoenix-protocol.md 6.2): one
// session, replies "ok" to every frame (echoing JSON payloads, reporting the
// size of binary ones), held GETs.
type fakeLongPoll struct {
	mu        sync.Mutex
	out       chan string
	queries   []string
	authToken string
	posts     int
}

func (f *fakeLongPoll) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	f.mu.Lock()
	f.queries = append(f.queries, r.URL.RawQuery)
	f.mu.Unlock()
	tok := r.Header.Get("X-Phoenix-Longpoll-Token")
	switch {
	case r.Method == http.MethodGet && tok == "":
		f.mu.Lock()
		f.authToken = r.Header.Get("X-Phoenix-AuthToken")
		f.mu.Unlock()
		fmt.Fprint(w, `{"status":410,"token":"T1","messages":[]}`)
	case r.Method == http.MethodGet:
		select {
		case m := <-f.out:
			msgs := []string{m}
			for more := true; more; {
				select {
				case m := <-f.out:
					msgs = append(msgs, m)
				default:
					more = false
				}
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"status": 200, "token": "T1", "messages": msgs})
		case <-time.After(100 * time.Millisecond):
			fmt.Fprint(w, `{"status":204,"token":"T1","messages":[]}`)
		case <-r.Context().Done():
		}
	case r.Method == http.MethodPost:
		f.mu.Lock()
		f.posts++
		f.mu.Unlock()
		sc := bufio.NewScanner(r.Body)
		for sc.Scan() {
			line := sc.Text()
			var jr, ref, topic any
			var resp json.RawMessage
			if strings.HasPrefix(line, "[") {
				var el []json.RawMessage
				_ = json.Unmarshal([]byte(line), &el)
				_ = json.Unmarshal(el[0], &jr)
				_ = json.Unmarshal(el[1], &ref)
				_ = json.Unmarshal(el[2], &topic)
				resp = el[4]
			} else {
				b, _ := base64.StdEncoding.DecodeString(line)
				jl, rl, tl := int(b[1]), int(b[2]), int(b[3])
				jr, ref, topic = string(b[5:5+jl]), string(b[5+jl:5+jl+rl]), string(b[5+jl+rl:5+jl+rl+tl])
				resp = json.RawMessage(fmt.Sprintf(`{"binary_bytes":%d}`, len(b)-5-jl-rl-tl-int(b[4])))
			}
			out, _ := json.Marshal([]any{jr, ref, topic, "phx_reply", map[string]any{"status": "ok", "response": resp}})
			f.out <- string(out)
		}
		fmt.Fprint(w, `{"status":200}`)
	}
}

func TestLongPoll(t *testing.T) {
	f := &fakeLongPoll{out: make(chan string, 100)}
	mux := http.NewServeMux()
	mux.Handle("/socket/longpoll", f)
	hs := httptest.NewServer(mux)
	defer hs.Close()

	ctx := testCtx(t)
	c, err := client.Dial(ctx, hs.URL+"/socket", fast(client.Options{
		Transport: client.LongPoll,
		Params:    map[string]string{"token": "alice"},
		AuthToken: "bearer-1",
	}))
	require.NoError(t, err)
	defer c.Close()

	ch := c.Channel("room:lp", map[string]int{"p": 1})
	reply, err := ch.Join(ctx)
	require.NoError(t, err)
	assert.JSONEq(t, `{"p":1}`, reply.Response.String())

	reply, err = ch.Push(ctx, "echo", map[string]string{"x": "y"})
	require.NoError(t, err)
	assert.JSONEq(t, `{"x":"y"}`, reply.Response.String())

	reply, err = ch.Push(ctx, "upload", client.Binary{1, 2, 3})
	require.NoError(t, err)
	assert.JSONEq(t, `{"binary_bytes":3}`, reply.Response.String())

	f.mu.Lock()
	defer f.mu.Unlock()
	assert.Equal(t, "bearer-1", f.authToken)
	assert.Equal(t, "token=alice&vsn=2.0.0", f.queries[0])
	assert.Equal(t, "token=alice&vsn=2.0.0&token=T1", f.queries[len(f.queries)-1], "session token last")
}

func TestLongPollNeedsV2(t *testing.T) {
	_, err := client.Dial(context.Background(), "ws://127.0.0.1:1/socket", client.Options{Transport: client.LongPoll, Vsn: "1.0.0"})
	assert.Error(t, err)
}
