package httpapi

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// metrics are exported at /metrics in the Prometheus text format. They are
// a handful of counters, hand-written rather than pulling in the Prometheus
// client library and its dependency tree for four series.
type metrics struct {
	inFlight atomic.Int64
	mu       sync.Mutex
	requests map[[3]string]uint64 // route, method, code
	bytesIn  map[string]uint64    // route
	bytesOut map[string]uint64    // route
}

func newMetrics() *metrics {
	return &metrics{
		requests: map[[3]string]uint64{},
		bytesIn:  map[string]uint64{},
		bytesOut: map[string]uint64{},
	}
}

var knownMethods = map[string]bool{"GET": true, "HEAD": true, "PUT": true, "POST": true, "DELETE": true, "PATCH": true, "OPTIONS": true}

func (m *metrics) observe(route, method string, code int, in, out int64) {
	if !knownMethods[method] {
		method = "other" // bound the label set
	}
	m.mu.Lock()
	m.requests[[3]string{route, method, strconv.Itoa(code)}]++
	m.bytesIn[route] += uint64(in)
	m.bytesOut[route] += uint64(out)
	m.mu.Unlock()
}

func (m *metrics) serve(w http.ResponseWriter, r *http.Request) error {
	var b strings.Builder
	m.mu.Lock()
	b.WriteString("# HELP drawbridge_requests_total HTTP requests by route, method and status.\n# TYPE drawbridge_requests_total counter\n")
	keys := make([][3]string, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [3]string) int { return strings.Compare(a[0]+a[1]+a[2], b[0]+b[1]+b[2]) })
	for _, k := range keys {
		fmt.Fprintf(&b, "drawbridge_requests_total{route=%q,method=%q,code=%q} %d\n", k[0], k[1], k[2], m.requests[k])
	}
	for _, s := range []struct {
		name, help string
		m          map[string]uint64
	}{
		{"drawbridge_request_body_bytes_total", "Request body bytes read, by route.", m.bytesIn},
		{"drawbridge_response_body_bytes_total", "Response body bytes written, by route.", m.bytesOut},
	} {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n", s.name, s.help, s.name)
		routes := make([]string, 0, len(s.m))
		for r := range s.m {
			routes = append(routes, r)
		}
		slices.Sort(routes)
		for _, r := range routes {
			fmt.Fprintf(&b, "%s{route=%q} %d\n", s.name, r, s.m[r])
		}
	}
	m.mu.Unlock()
	fmt.Fprintf(&b, "# HELP drawbridge_requests_in_flight Requests being served.\n# TYPE drawbridge_requests_in_flight gauge\ndrawbridge_requests_in_flight %d\n", m.inFlight.Load())
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write([]byte(b.String()))
	}
	return nil
}
