package httpapi

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/enarx-go/enarx/drawbridge/internal/store"
)

// metrics are the server's counters, exported at /metrics by the Prometheus
// client library from a registry of this Handler's own (no global state, no
// Go runtime or process collectors). Every label comes from a bounded set:
// routes are the dispatcher's names, methods are known methods or "other",
// codes are the status codes the server writes.
type metrics struct {
	inFlight prometheus.Gauge
	requests *prometheus.CounterVec // route, method, code
	bytesIn  *prometheus.CounterVec // route
	bytesOut *prometheus.CounterVec // route
	handler  http.Handler
}

func newMetrics(r *store.Registry) *metrics {
	m := &metrics{
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "drawbridge_requests_in_flight", Help: "Requests being served.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drawbridge_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "code"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drawbridge_request_body_bytes_total", Help: "Request body bytes read, by route.",
		}, []string{"route"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drawbridge_response_body_bytes_total", Help: "Response body bytes written, by route.",
		}, []string{"route"}),
	}
	dirBytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "drawbridge_directory_buffer_bytes",
		Help: "Bytes of the directory upload budget (--max-directory-buffers) held by uploads being read, parsed or stored.",
	}, func() float64 { return float64(r.DirectoryBuffersInUse()) })
	dirWaiting := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "drawbridge_directory_buffer_waiting",
		Help: "Directory uploads waiting for room in the directory upload budget.",
	}, func() float64 { return float64(r.DirectoryBufferWaiters()) })
	upBytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "drawbridge_upload_buffer_bytes",
		Help: "Bytes of the upload buffer budget (--max-upload-buffers) held by pipelined node uploads.",
	}, func() float64 { return float64(r.UploadBuffersInUse()) })
	upFallbacks := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "drawbridge_upload_buffer_fallbacks_total",
		Help: "Node uploads of 1 MiB or more that found no room in the upload buffer budget and were copied with a small buffer.",
	}, func() float64 { return float64(r.UploadBufferFallbacks()) })
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.inFlight, m.requests, m.bytesIn, m.bytesOut, dirBytes, dirWaiting, upBytes, upFallbacks)
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return m
}

var knownMethods = map[string]bool{"GET": true, "HEAD": true, "PUT": true, "POST": true, "DELETE": true, "PATCH": true, "OPTIONS": true}

func (m *metrics) observe(route, method string, code int, in, out int64) {
	if !knownMethods[method] {
		method = "other" // bound the label set
	}
	m.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.bytesIn.WithLabelValues(route).Add(float64(in))
	m.bytesOut.WithLabelValues(route).Add(float64(out))
}

func (m *metrics) serve(w http.ResponseWriter, r *http.Request) error {
	m.handler.ServeHTTP(w, r)
	return nil
}
