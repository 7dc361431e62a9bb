package prometheus_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/phxgo/phx/channel"
	"github.com/phxgo/phx/socket"
	phxprom "github.com/phxgo/phx/socket/metrics/prometheus"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// values gathers reg into "name{label=value,...}" -> value, with labels in
// name order, so tests compare plain maps instead of text exposition.
func values(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(labels)
			key := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			default:
				t.Fatalf("unexpected metric type %v for %s", mf.GetType(), key)
			}
		}
	}
	return out
}

func TestEveryEvent(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := phxprom.New(reg)
	require.NoError(t, err)

	m.ConnectionOpened("websocket")
	m.ConnectionOpened("websocket")
	m.ConnectionOpened("longpoll")
	m.ConnectionClosed("websocket")
	m.ConnectRefused("websocket", "origin")
	m.ConnectRefused("longpoll", "auth")
	m.ConnectRefused("longpoll", "auth")
	m.MessageIn("websocket")
	m.MessageIn("websocket")
	m.MessageOut("longpoll")
	m.RateLimited("join")
	m.RateLimited("message")
	m.RateLimited("message")
	m.SlowConsumerClosed()
	m.Joined("websocket", "ok")
	m.Joined("websocket", "unmatched")
	m.Replied("longpoll", "error")
	m.Dropped("longpoll", "binary")

	assert.Equal(t, map[string]float64{
		"phx_joins_total{status=ok,transport=websocket}":               1,
		"phx_joins_total{status=unmatched,transport=websocket}":        1,
		"phx_replies_total{status=error,transport=longpoll}":           1,
		"phx_dropped_frames_total{reason=binary,transport=longpoll}":   1,
		"phx_connections{transport=longpoll}":                          1,
		"phx_connections{transport=websocket}":                         1,
		"phx_connections_total{transport=longpoll}":                    1,
		"phx_connections_total{transport=websocket}":                   2,
		"phx_connect_refused_total{reason=auth,transport=longpoll}":    2,
		"phx_connect_refused_total{reason=origin,transport=websocket}": 1,
		"phx_messages_in_total{transport=websocket}":                   2,
		"phx_messages_out_total{transport=longpoll}":                   1,
		"phx_rate_limited_total{kind=join}":                            1,
		"phx_rate_limited_total{kind=message}":                         2,
		"phx_slow_consumer_closed_total{}":                             1,
	}, values(t, reg))
}

func TestRegisterTwiceFails(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, err := phxprom.New(reg)
	require.NoError(t, err)
	_, err = phxprom.New(reg)
	var already prometheus.AlreadyRegisteredError
	assert.ErrorAs(t, err, &already, "a second server on one registry needs its own registerer (prometheus.WrapRegistererWith)")

	// Two servers share a registry with a constant label each (label
	// names must be the same for every series of a metric).
	shared := prometheus.NewRegistry()
	for _, name := range []string{"public", "admin"} {
		_, err = phxprom.New(prometheus.WrapRegistererWith(prometheus.Labels{"server": name}, shared))
		assert.NoError(t, err, name)
	}
}

// TestConcurrentUse hammers every method from many goroutines, as a server's
// connection goroutines do; run under -race it checks the adapter needs no
// locking of its own, and the totals check nothing is lost.
func TestConcurrentUse(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := phxprom.New(reg)
	require.NoError(t, err)
	const workers, each = 8, 500
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				m.ConnectionOpened("websocket")
				m.MessageIn("websocket")
				m.MessageOut("websocket")
				m.ConnectionClosed("websocket")
			}
		})
	}
	wg.Wait()
	v := values(t, reg)
	assert.Equal(t, float64(workers*each), v["phx_connections_total{transport=websocket}"])
	assert.Equal(t, float64(workers*each), v["phx_messages_in_total{transport=websocket}"])
	assert.Equal(t, float64(0), v["phx_connections{transport=websocket}"])
}

type nop struct{}

func (nop) Join(*channel.Context[string], channel.Payload) (channel.Result, error) {
	return channel.OK(nil), nil
}

func (nop) HandleIn(*channel.Context[string], string, channel.Payload) (channel.Result, error) {
	return channel.OK(nil), nil
}

// TestWithServer wires the adapter into a real socket.Server: the events the
// server reports arrive under the documented names and labels.
func TestWithServer(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := phxprom.New(reg)
	require.NoError(t, err)
	router := channel.NewRouter[string]()
	router.Handle("room:*", func() channel.Handler[string] { return nop{} })
	srv := socket.New(socket.Config[string]{
		Authenticator: socket.AuthenticatorFunc[string](func(_ context.Context, r *socket.ConnectRequest) (string, error) {
			if r.Params.Get("token") == "" {
				return "", socket.ErrRefused
			}
			return r.Params.Get("token"), nil
		}),
		Router:  router,
		Metrics: m,
	})
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, srv.Shutdown(ctx))
		hs.Close()
	})
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/socket/websocket?vsn=2.0.0"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	_, resp, err := websocket.Dial(ctx, url, nil)
	require.Error(t, err)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)

	c, _, err := websocket.Dial(ctx, url+"&token=alice", nil)
	require.NoError(t, err)
	defer c.CloseNow()
	require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(`["1","1","room:a","phx_join",{}]`)))
	_, reply, err := c.Read(ctx)
	require.NoError(t, err)
	require.Contains(t, string(reply), `"status":"ok"`)

	// Counters are bumped on the server's goroutines, around the write the
	// client has just read: wait for them rather than race them.
	want := map[string]float64{
		"phx_connections_total{transport=websocket}":                 1,
		"phx_connections{transport=websocket}":                       1,
		"phx_connect_refused_total{reason=auth,transport=websocket}": 1,
		"phx_messages_in_total{transport=websocket}":                 1,
		"phx_messages_out_total{transport=websocket}":                1,
		"phx_joins_total{status=ok,transport=websocket}":             1,
		"phx_replies_total{status=ok,transport=websocket}":           1,
	}
	require.Eventually(t, func() bool {
		v := values(t, reg)
		for k, n := range want {
			if v[k] != n {
				return false
			}
		}
		return true
	}, 5*time.Second, 5*time.Millisecond, "metrics: %v", want)

	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
	require.Eventually(t, func() bool { return values(t, reg)["phx_connections{transport=websocket}"] == 0 },
		5*time.Second, 10*time.Millisecond)
}
