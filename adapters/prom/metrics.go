package prom

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/chat"
)

var _ chat.Metrics = (*Metrics)(nil)

const namespace = "parley"

// Result label values of appends that did not fail; failures are labelled
// with their domain error code (conflict, unavailable, internal, ...).
const resultOK = "ok"

// otherFrame labels frames whose type is not one of the protocol's.
const otherFrame = "other"

// frameTypes are the frame types of the parley.v1 protocol, both
// directions, plus the gateway's labels for client frames it could not
// use: "invalid" (did not parse), "binary" and "unknown" (a type the
// protocol does not have). Any
// other value passed to FrameIn or FrameOut is counted as "other", so a
// client sending made-up types cannot create series.
var frameTypes = map[string]bool{
	"history": true, "message": true, "chunk": true, "answer": true,
	"answer_failed": true, "answer_cancelled": true, "error": true,
	"pong": true, "ping": true, "cancel": true,
	"invalid": true, "binary": true, "unknown": true,
}

// Metrics records Parley's metrics in a private registry. Create it with
// New; it is safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	appends        *prometheus.CounterVec
	appendDuration prometheus.Histogram
	eventsAppended prometheus.Counter

	answers        *prometheus.CounterVec
	answerDuration *prometheus.HistogramVec

	connsOpen   *prometheus.GaugeVec
	connsOpened *prometheus.CounterVec
	connsClosed *prometheus.CounterVec
	framesIn    *prometheus.CounterVec
	framesOut   *prometheus.CounterVec
	queueDrops  prometheus.Counter

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec

	projectionLag     *prometheus.GaugeVec
	projectionRebuilt *prometheus.CounterVec
}

// New returns Metrics over a fresh registry that also holds the Go runtime
// and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		appends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "event_appends_total",
			Help: "Appends to the event store, by result: ok, or the error code (conflict, unavailable, ...).",
		}, []string{"result"}),
		appendDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "event_append_duration_seconds",
			Help:    "Time one append to the event store took, failed ones included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5ms to ~4s
		}),
		eventsAppended: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "events_appended_total",
			Help: "Events written by successful appends.",
		}),
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "answers_total",
			Help: "Answers that ended, by outcome (complete, failed, cancelled, abandoned).",
		}, []string{"outcome"}),
		answerDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "answer_duration_seconds",
			Help:    "Time from an answer's start to its end, by outcome.",
			Buckets: []float64{0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300},
		}, []string{"outcome"}),
		connsOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "ws_connections",
			Help: "WebSocket connections open now, by kind (chat, audit).",
		}, []string{"kind"}),
		connsOpened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "ws_connections_opened_total",
			Help: "WebSocket connections accepted, by kind.",
		}, []string{"kind"}),
		connsClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "ws_connections_closed_total",
			Help: "WebSocket connections closed, by kind and close code.",
		}, []string{"kind", "code"}),
		framesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "ws_frames_received_total",
			Help: "WebSocket frames received from clients, by frame type.",
		}, []string{"type"}),
		framesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "ws_frames_sent_total",
			Help: "WebSocket frames sent to clients, by frame type.",
		}, []string{"type"}),
		queueDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "ws_send_queue_overflows_total",
			Help: "Connections dropped because their send queue was full (close 4000).",
		}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "http_requests_total",
			Help: "HTTP requests served, by route pattern and status.",
		}, []string{"route", "status"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by route pattern; for WebSocket routes, the connection's lifetime.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
		projectionLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "projection_lag_seconds",
			Help: "How long ago the oldest event a projection has not applied yet was recorded; 0 when caught up.",
		}, []string{"projection"}),
		projectionRebuilt: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "projection_rooms_rebuilt_total",
			Help: "Rooms a projection folded again from the log because its own state of them had vanished (Redis flushed or restarted empty).",
		}, []string{"projection"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.appends, m.appendDuration, m.eventsAppended,
		m.answers, m.answerDuration,
		m.connsOpen, m.connsOpened, m.connsClosed, m.framesIn, m.framesOut, m.queueDrops,
		m.httpRequests, m.httpDuration,
		m.projectionLag, m.projectionRebuilt,
	)
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry returns the private registry, for collectors other packages add
// (a pgxpool stats collector, say).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveAppend records one append to the event store: its result (ok or
// the error's domain code), its duration and, when it succeeded, the
// number of events it wrote.
func (m *Metrics) ObserveAppend(d time.Duration, events int, err error) {
	result := resultOK
	if err != nil {
		result = domain.ErrorCode(err)
	}
	m.appends.WithLabelValues(result).Inc()
	m.appendDuration.Observe(d.Seconds())
	if err == nil && events > 0 {
		m.eventsAppended.Add(float64(events))
	}
}

// ObserveAnswer records the end of an answer: its outcome (one of
// chat.Outcome*) and how long it ran.
func (m *Metrics) ObserveAnswer(outcome string, d time.Duration) {
	m.answers.WithLabelValues(outcome).Inc()
	m.answerDuration.WithLabelValues(outcome).Observe(d.Seconds())
}

// ConnOpened records an accepted WebSocket connection of kind ("chat" or
// "audit").
func (m *Metrics) ConnOpened(kind string) {
	m.connsOpened.WithLabelValues(kind).Inc()
	m.connsOpen.WithLabelValues(kind).Inc()
}

// ConnClosed records the end of a connection ConnOpened recorded, with the
// close code it ended with.
func (m *Metrics) ConnClosed(kind string, code int) {
	m.connsClosed.WithLabelValues(kind, strconv.Itoa(code)).Inc()
	m.connsOpen.WithLabelValues(kind).Dec()
}

// FrameIn records a frame received from a client, by its protocol type
// ("message", "cancel", "ping") or "invalid", "binary", "unknown".
func (m *Metrics) FrameIn(typ string) { m.framesIn.WithLabelValues(frameLabel(typ)).Inc() }

// FrameOut records a frame sent to a client, by its protocol type.
func (m *Metrics) FrameOut(typ string) { m.framesOut.WithLabelValues(frameLabel(typ)).Inc() }

// SendQueueDrop records a connection dropped because its send queue
// overflowed.
func (m *Metrics) SendQueueDrop() { m.queueDrops.Inc() }

// ObserveHTTP records one HTTP request: its route pattern (as ServeMux
// matched it, "unmatched" when none did), status and duration.
func (m *Metrics) ObserveHTTP(route string, status int, d time.Duration) {
	m.httpRequests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.httpDuration.WithLabelValues(route).Observe(d.Seconds())
}

// SetProjectionLag sets how far the projection name is behind the log: the
// age of the oldest event it has not applied yet (zero when caught up).
func (m *Metrics) SetProjectionLag(name string, lag time.Duration) {
	m.projectionLag.WithLabelValues(name).Set(lag.Seconds())
}

func frameLabel(typ string) string {
	if frameTypes[typ] {
		return typ
	}
	return otherFrame
}

// RoomRebuilt counts a room the projection name folded again from the log
// because its own state of it had vanished.
func (m *Metrics) RoomRebuilt(name string) { m.projectionRebuilt.WithLabelValues(name).Inc() }
