package steward

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// metrics keeps the Steward's counters and writes them in the Prometheus
// text exposition format (version 0.0.4).
//
// It is hand-written on purpose: the Steward exports four metric families
// with small, fixed label sets, and prometheus/client_golang would add about
// ten modules (protobuf, procfs, …) to the dependency tree of a CA for what
// is a few dozen lines of formatting.
type metrics struct {
	mu         sync.Mutex
	requests   map[int]uint64    // HTTP responses by status code
	issued     map[string]uint64 // certificates delivered, by TEE kind
	rejections map[string]uint64 // rejections by stable code
	latency    histogram         // POST / latency
	debug      bool
}

// latencyBuckets are the upper bounds (seconds) of the latency histogram.
var latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

type histogram struct {
	counts []uint64 // per bucket, not cumulative; len(latencyBuckets)+1 (last is +Inf)
	sum    float64
	count  uint64
}

func newMetrics(debug bool) *metrics {
	return &metrics{
		requests:   map[int]uint64{},
		issued:     map[string]uint64{},
		rejections: map[string]uint64{},
		latency:    histogram{counts: make([]uint64, len(latencyBuckets)+1)},
		debug:      debug,
	}
}

func (m *metrics) request(status int) {
	m.mu.Lock()
	m.requests[status]++
	m.mu.Unlock()
}

func (m *metrics) observe(d time.Duration) {
	s := d.Seconds()
	i, _ := slices.BinarySearch(latencyBuckets, s)
	m.mu.Lock()
	m.latency.counts[i]++
	m.latency.sum += s
	m.latency.count++
	m.mu.Unlock()
}

func (m *metrics) issue(kinds []string) {
	m.mu.Lock()
	for _, k := range kinds {
		m.issued[k]++
	}
	m.mu.Unlock()
}

func (m *metrics) reject(code string) {
	m.mu.Lock()
	m.rejections[code]++
	m.mu.Unlock()
}

// writeTo writes all metrics in the text exposition format.
func (m *metrics) writeTo(w io.Writer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder

	family(&b, "steward_http_requests_total", "counter", "HTTP responses by status code.")
	for _, code := range sortedKeys(m.requests) {
		fmt.Fprintf(&b, "steward_http_requests_total{code=%q} %d\n", strconv.Itoa(code), m.requests[code])
	}
	family(&b, "steward_certificates_issued_total", "counter", "Certificates delivered, by attested TEE kind.")
	for _, k := range sortedKeys(m.issued) {
		fmt.Fprintf(&b, "steward_certificates_issued_total{tee=\"%s\"} %d\n", labelValue(k), m.issued[k])
	}
	family(&b, "steward_rejections_total", "counter", "Rejected requests, by stable reason code.")
	for _, c := range sortedKeys(m.rejections) {
		fmt.Fprintf(&b, "steward_rejections_total{code=\"%s\"} %d\n", labelValue(c), m.rejections[c])
	}
	family(&b, "steward_request_duration_seconds", "histogram", "Latency of certificate requests (POST /).")
	var cum uint64
	for i, le := range latencyBuckets {
		cum += m.latency.counts[i]
		fmt.Fprintf(&b, "steward_request_duration_seconds_bucket{le=\"%s\"} %d\n", strconv.FormatFloat(le, 'g', -1, 64), cum)
	}
	cum += m.latency.counts[len(latencyBuckets)]
	fmt.Fprintf(&b, "steward_request_duration_seconds_bucket{le=\"+Inf\"} %d\n", cum)
	fmt.Fprintf(&b, "steward_request_duration_seconds_sum %s\n", formatFloat(m.latency.sum))
	fmt.Fprintf(&b, "steward_request_duration_seconds_count %d\n", m.latency.count)
	family(&b, "steward_debug_mode", "gauge", "1 when the Steward runs in debug mode (self-issued CA).")
	d := 0
	if m.debug {
		d = 1
	}
	fmt.Fprintf(&b, "steward_debug_mode %d\n", d)

	_, err := io.WriteString(w, b.String())
	return err
}

func family(b *strings.Builder, name, typ, help string) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

// labelValue escapes a label value as the exposition format requires.
func labelValue(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func formatFloat(f float64) string {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return "NaN"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func sortedKeys[K int | string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
