package steward

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the Steward's counters, exported at /metrics by the
// Prometheus client library from a registry of this Server's own (no
// global state, no Go runtime or process collectors).
type metrics struct {
	requests   *prometheus.CounterVec // HTTP responses by status code
	issued     *prometheus.CounterVec // certificates delivered, by TEE kind
	rejections *prometheus.CounterVec // rejections by stable code
	latency    prometheus.Histogram   // POST / latency
	handler    http.Handler
}

// latencyBuckets are the upper bounds (seconds) of the latency histogram.
var latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

func newMetrics(debug bool) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "steward_http_requests_total", Help: "HTTP responses by status code.",
		}, []string{"code"}),
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "steward_certificates_issued_total", Help: "Certificates delivered, by attested TEE kind.",
		}, []string{"tee"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "steward_rejections_total", Help: "Rejected requests, by stable reason code.",
		}, []string{"code"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "steward_request_duration_seconds", Help: "Latency of certificate requests (POST /).", Buckets: latencyBuckets,
		}),
	}
	debugMode := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "steward_debug_mode", Help: "1 when the Steward runs in debug mode (self-issued CA).",
	})
	if debug {
		debugMode.Set(1)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.requests, m.issued, m.rejections, m.latency, debugMode)
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return m
}

func (m *metrics) request(status int) { m.requests.WithLabelValues(strconv.Itoa(status)).Inc() }

func (m *metrics) observe(d time.Duration) { m.latency.Observe(d.Seconds()) }

func (m *metrics) issue(kinds []string) {
	for _, k := range kinds {
		m.issued.WithLabelValues(k).Inc()
	}
}

// reject counts a rejection; codes are short dotted names (validCode), so
// the label set stays bounded.
func (m *metrics) reject(code string) { m.rejections.WithLabelValues(code).Inc() }
