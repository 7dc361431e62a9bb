// Package prometheus exports a socket.Server's events as Prometheus metrics.
//
//	m := prometheus.New(registry) // a *prometheus.Registry, or prometheus.DefaultRegisterer
//	srv := socket.New(socket.Config[User]{..., Metrics: m})
//	http.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
package prometheus

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/phxgo/phx/socket"
)

// Metrics implements socket.Metrics with Prometheus collectors, all under
// the "phx_" prefix.
type Metrics struct {
	open        *prometheus.GaugeVec
	opened      *prometheus.CounterVec
	refused     *prometheus.CounterVec
	in          *prometheus.CounterVec
	out         *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
	slow        prometheus.Counter
	joins       *prometheus.CounterVec
	replies     *prometheus.CounterVec
	dropped     *prometheus.CounterVec
}

var _ socket.Metrics = (*Metrics)(nil)

// New creates the collectors and registers them with reg.
func New(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		open:        prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "phx_connections", Help: "Open connections."}, []string{"transport"}),
		opened:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "phx_connections_total", Help: "Connections opened."}, []string{"transport"}),
		refused:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "phx_connect_refused_total", Help: "Connects refused, by reason."}, []string{"transport", "reason"}),
		in:          prometheus.NewCounterVec(prometheus.CounterOpts{Name: "phx_messages_in_total", Help: "Client messages decoded."}, []string{"transport"}),
		out:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "phx_messages_out_total", Help: "Frames written to clients."}, []string{"transport"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "phx_rate_limited_total", Help: "Client messages refused by a rate limit."}, []string{"kind"}),
		joins:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "phx_joins_total", Help: "Channel joins, by outcome."}, []string{"transport", "status"}),
		replies:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "phx_replies_total", Help: "Replies sent, by status (heartbeats excepted)."}, []string{"transport", "status"}),
		dropped:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "phx_dropped_frames_total", Help: "Frames a client could not be sent, by reason."}, []string{"transport", "reason"}),
		slow:        prometheus.NewCounter(prometheus.CounterOpts{Name: "phx_slow_consumer_closed_total", Help: "Connections closed because their outbound queue was full."}),
	}
	for _, c := range []prometheus.Collector{m.open, m.opened, m.refused, m.in, m.out, m.rateLimited, m.slow, m.joins, m.replies, m.dropped} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) ConnectionOpened(t string) {
	m.open.WithLabelValues(t).Inc()
	m.opened.WithLabelValues(t).Inc()
}
func (m *Metrics) ConnectionClosed(t string) { m.open.WithLabelValues(t).Dec() }
func (m *Metrics) ConnectRefused(t, reason string) {
	m.refused.WithLabelValues(t, reason).Inc()
}
func (m *Metrics) MessageIn(t string)      { m.in.WithLabelValues(t).Inc() }
func (m *Metrics) MessageOut(t string)     { m.out.WithLabelValues(t).Inc() }
func (m *Metrics) RateLimited(kind string) { m.rateLimited.WithLabelValues(kind).Inc() }
func (m *Metrics) SlowConsumerClosed()     { m.slow.Inc() }

// Joined implements socket.Metrics.
func (m *Metrics) Joined(t, status string) { m.joins.WithLabelValues(t, status).Inc() }

// Replied implements socket.Metrics. Statuses are free-form names chosen by
// handlers; keep them few, as each becomes a label value.
func (m *Metrics) Replied(t, status string) { m.replies.WithLabelValues(t, status).Inc() }

// Dropped implements socket.Metrics.
func (m *Metrics) Dropped(t, reason string) { m.dropped.WithLabelValues(t, reason).Inc() }
