// Package steward is the Steward: a stateless attestation CA. A Keep sends
// a PKCS#10 certificate request carrying TEE evidence; the Steward checks
// the request, has the evidence verified, and issues a short-lived
// certificate for the Keep's key that records what was attested.
//
// It is wire-compatible with upstream Enarx Steward (see docs/steward.md)
// and adds reasons for rejections, the workload-identity and attested-as
// extensions, metrics and limits.
//
// Trust: the package trusts its Config (CA key, verifiers, SANs). It trusts
// nothing in a request: package steward/csr parses and authenticates the
// request, the attest.Verifiers decide about evidence, and this package
// decides which extensions may be requested and what goes into the leaf.
package steward

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"runtime"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/semaphore"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attest/certext"
	"github.com/enarx-go/enarx/internal/connlimit"
	"github.com/enarx-go/enarx/steward/csr"
)

// Validity is the lifetime of an issued certificate (upstream: 28 days),
// counted from the time of issuance.
const Validity = 28 * 24 * time.Hour

// Backdate is how far before the time of issuance an issued certificate's
// notBefore lies (never before the CA's own). Upstream starts validity at
// the second of issuance, so a Keep whose clock lags the Steward's by a
// second (a VM whose clock comes from an emulated RTC of one-second
// resolution, a guest not yet synchronised) refuses its own fresh
// certificate as not yet valid. A minute covers such lags and gives a
// relying party nothing: the certificate is no more valid than when issued.
const Backdate = time.Minute

// DefaultMaxBodyBytes is the default request body limit.
const DefaultMaxBodyBytes = 1 << 20

// Stable rejection codes for request-level failures decided by the Steward
// (package csr defines the csr.* codes for the request's structure and
// signature; verifiers define theirs, e.g. kvm.*).
const (
	CodeContentType         = "request.content-type"      // 400, as upstream (not 415)
	CodeTooLarge            = "request.too-large"         // 413
	CodeBody                = "request.body"              // 400: the body could not be read
	CodeMethod              = "request.method"            // 405
	CodeNotFound            = "request.not-found"         // 404
	CodeBusy                = "request.busy"              // 503: too many requests in progress
	CodeTimeout             = "request.timeout"           // 503: the request took longer than Config.RequestTimeout
	CodeExtensionUnknown    = "csr.extension.unknown"     // an extension the Steward does not grant
	CodeExtensionCritical   = "csr.extension.critical"    // a critical evidence/workload extension
	CodeExtensionSAN        = "csr.extension.san"         // names are set by the Steward (--san)
	CodeSubject             = "csr.subject"               // a subject larger than MaxSubject
	CodeExtensionAttested   = "csr.extension.attested-as" // only the Steward writes it
	CodeWorkload            = "csr.workload"              // malformed workload-identity extension
	CodeEvidenceMissing     = "evidence.missing"          // 401
	CodeEvidenceMultiple    = "evidence.multiple"         // more than one evidence extension
	CodeEvidenceUnsupported = "evidence.unsupported"      // known evidence kind, no verifier configured
	CodeEvidenceRejected    = "evidence.rejected"         // a verifier failed without a specific code
	CodeWorkloadBinding     = "evidence.workload"         // the report data names another workload
	CodeInternal            = "internal"                  // 500
)

// Config configures a Server. CA is required; everything else has a
// usable zero value.
type Config struct {
	// CA signs the issued certificates. A self-issued CA certificate puts
	// the Steward in debug mode (upstream's rule).
	CA *CA
	// Verifiers check evidence; each handles one evidence OID. Without a
	// verifier for an evidence OID, such requests are rejected with
	// evidence.unsupported.
	Verifiers []attest.Verifier
	// SANs are added to every issued certificate: IP addresses as IP SANs,
	// anything else as a DNS name.
	SANs []string
	// Now is the issuance clock (notBefore); nil means time.Now.
	Now func() time.Time
	// VerifyTime is the verification clock passed to verifiers (pinnable to
	// replay recorded evidence); nil means Now.
	VerifyTime func() time.Time
	// Logger receives request logs; nil discards them.
	Logger *slog.Logger
	// MaxBodyBytes bounds request bodies; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxConcurrent bounds how many certificate requests are processed at
	// once (evidence verification is CPU-bound); a request that finds no
	// free slot within BusyWait gets 503 with Retry-After. The slot is
	// taken after the body is read and given back before the reply is
	// written, so slow clients hold none. 0 means 4×GOMAXPROCS.
	MaxConcurrent int
	// BusyWait is how long a certificate request waits for a processing
	// slot, or for room for its body (MaxBodyMemory); 0 means
	// DefaultBusyWait.
	BusyWait time.Duration
	// MaxBodyMemory bounds the request-body bytes held at once by all
	// requests together: a request reserves its buffer as its body
	// arrives (4 KiB first, then doubling, never beyond its declared
	// Content-Length or MaxBodyBytes), and gets 503 request.busy when more
	// does not fit within BusyWait. So clients that send bodies slowly hold
	// at most this much memory together, and one that declares a large
	// body and stalls holds about what it sent. 0 means
	// DefaultMaxBodyMemory; it is raised to MaxBodyBytes if below.
	MaxBodyMemory int64
	// RequestTimeout bounds the work on one certificate request once its
	// body is read (decoding, signature and evidence verification,
	// signing): verifiers get it as their context's deadline, and a request
	// still unfinished then is refused with 503 request.timeout. The work
	// itself is bounded by the input limits (body size, RSA ≤ 4096 bits,
	// 64 requests per bundle); this is the backstop. 0 means
	// DefaultRequestTimeout.
	RequestTimeout time.Duration
	// MaxConns bounds the connections Serve holds open, MaxConnsPerIP
	// those from one address (package internal/connlimit: at a bound an
	// idle connection is closed for a new one; with none idle a new one
	// over MaxConnsPerIP is closed, one over MaxConns waits). 0 means
	// DefaultMaxConns and DefaultMaxConnsPerIP; MaxConnsPerIP below 0 is
	// no per-address bound (behind a proxy that hides client addresses).
	MaxConns, MaxConnsPerIP int
}

// Defaults of Config.
const (
	DefaultBusyWait       = 2 * time.Second
	DefaultMaxBodyMemory  = 64 << 20
	DefaultRequestTimeout = 10 * time.Second
	// DefaultMaxConns keeps the memory of open connections (tens of KiB
	// each with TLS) well inside deploy/k8s's 256 MiB.
	DefaultMaxConns      = 1024
	DefaultMaxConnsPerIP = 128
)

// Server issues certificates. It is an http.Handler; see ServeHTTP.
type Server struct {
	ca         *CA
	debug      bool
	verifiers  map[string]attest.Verifier
	dnsNames   []string
	ips        []net.IP
	now        func() time.Time
	verifyTime func() time.Time
	log        *slog.Logger
	maxBody    int64
	chainDER   [][]byte // root first, ending with the CA certificate
	metrics    *metrics
	slots      chan struct{} // processing slots, see Config.MaxConcurrent
	busyWait   time.Duration
	bodies     *semaphore.Weighted // body bytes, see Config.MaxBodyMemory
	timeout    time.Duration       // Config.RequestTimeout
	conns      connlimit.Limits    // Config.MaxConns, MaxConnsPerIP
}

// New checks cfg and returns a Server. It logs loudly when the Steward is
// in debug mode.
func New(cfg Config) (*Server, error) {
	if cfg.CA == nil {
		return nil, errors.New("steward: a CA is required")
	}
	if err := cfg.CA.check(); err != nil {
		return nil, fmt.Errorf("steward: %w", err)
	}
	s := &Server{
		ca:         cfg.CA,
		debug:      cfg.CA.Debug(),
		verifiers:  map[string]attest.Verifier{},
		now:        cfg.Now,
		verifyTime: cfg.VerifyTime,
		log:        cfg.Logger,
		maxBody:    cfg.MaxBodyBytes,
		conns:      connlimit.Limits{Max: cfg.MaxConns, PerIP: cfg.MaxConnsPerIP},
	}
	if s.conns.Max <= 0 {
		s.conns.Max = DefaultMaxConns
	}
	switch {
	case s.conns.PerIP == 0:
		s.conns.PerIP = DefaultMaxConnsPerIP
	case s.conns.PerIP < 0:
		s.conns.PerIP = 0
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.verifyTime == nil {
		s.verifyTime = s.now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	n := cfg.MaxConcurrent
	if n <= 0 {
		n = 4 * runtime.GOMAXPROCS(0)
	}
	s.slots = make(chan struct{}, n)
	s.busyWait = cfg.BusyWait
	if s.busyWait <= 0 {
		s.busyWait = DefaultBusyWait
	}
	mem := cfg.MaxBodyMemory
	if mem <= 0 {
		mem = DefaultMaxBodyMemory
	}
	// readBody reserves one byte beyond a body's length for the read
	// that finds its end: a body of exactly MaxBodyBytes needs that much.
	s.bodies = semaphore.NewWeighted(max(mem, s.maxBody+1))
	s.timeout = cfg.RequestTimeout
	if s.timeout <= 0 {
		s.timeout = DefaultRequestTimeout
	}
	for _, v := range cfg.Verifiers {
		oid := v.OID().String()
		if _, dup := s.verifiers[oid]; dup {
			return nil, fmt.Errorf("steward: two verifiers for evidence OID %s", oid)
		}
		if !isEvidenceOID(v.OID()) {
			return nil, fmt.Errorf("steward: verifier OID %s is not an evidence OID", oid)
		}
		s.verifiers[oid] = v
	}
	for _, san := range cfg.SANs {
		if ip := net.ParseIP(san); ip != nil {
			s.ips = append(s.ips, ip)
			continue
		}
		if err := checkDNSName(san); err != nil {
			return nil, fmt.Errorf("steward: SAN %q: %w", san, err)
		}
		s.dnsNames = append(s.dnsNames, san)
	}
	for i := len(cfg.CA.Chain) - 1; i >= 0; i-- {
		s.chainDER = append(s.chainDER, cfg.CA.Chain[i].Raw)
	}
	s.metrics = newMetrics(s.debug)

	caCert := cfg.CA.Chain[0]
	if now := s.now(); now.Before(caCert.NotBefore) || now.After(caCert.NotAfter) {
		s.log.Warn("steward: the CA certificate is not valid now; issued certificates will not verify",
			"not_before", caCert.NotBefore, "not_after", caCert.NotAfter)
	}
	if s.debug {
		s.log.Warn("steward: DEBUG MODE: the CA certificate is self-issued, so no-hardware (KVM) evidence is accepted; "+
			"issued certificates record steward-debug=true. Use a CA issued by another CA in production.",
			"ca_subject", caCert.Subject.String())
	}
	return s, nil
}

// Debug reports whether the Steward runs in debug mode.
func (s *Server) Debug() bool { return s.debug }

func isEvidenceOID(oid asn1.ObjectIdentifier) bool {
	return evidenceName(oid) != ""
}

// checkDNSName accepts host names made of letters, digits and hyphens, with
// an optional leading "*." wildcard label.
func checkDNSName(name string) error {
	n := strings.TrimPrefix(name, "*.")
	if n == "" || len(name) > 253 {
		return errors.New("not a DNS name or IP address")
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("not a DNS name or IP address")
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return errors.New("not a DNS name or IP address")
			}
		}
	}
	return nil
}

// Issue handles one DER certificate request and returns the issued
// certificate (DER). An error is an *attest.Rejection whose code says why;
// StatusCode maps it to an HTTP status. The work is bounded by
// Config.RequestTimeout and by ctx.
func (s *Server) Issue(ctx context.Context, csrDER []byte) ([]byte, error) {
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	c, err := s.issue(ctx, csrDER)
	if err != nil {
		return nil, err
	}
	return c.der, nil
}

// issued is one certificate made by issue, with what the logs and metrics
// record about it.
type issued struct {
	der      []byte
	serial   *big.Int
	claims   *attest.Claims
	workload *certext.Workload // the copied workload identity, if any
}

// errDeadline is the cause of a request context that reached
// Config.RequestTimeout.
var errDeadline = errors.New("the request took longer than the steward allows")

// deadline returns ctx bounded by Config.RequestTimeout.
func (s *Server) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, s.timeout, errDeadline)
}

// alive returns the rejection for a request whose context is done: past
// its deadline, or abandoned by its client.
func (s *Server) alive(ctx context.Context) error {
	if ctx.Err() == nil {
		return nil
	}
	if errors.Is(context.Cause(ctx), errDeadline) {
		return attest.Reject(CodeTimeout, "the request took longer than %v; retry later", s.timeout)
	}
	return attest.RejectErr(CodeTimeout, context.Cause(ctx), "the request was abandoned")
}

// issue checks one request and signs its certificate. It gives up, with
// CodeTimeout, as soon as it finds ctx done between its stages.
// MaxSubject bounds the DER subject a CSR may carry: the steward copies
// it into the certificate unchecked, as upstream does, and would otherwise
// sign certificates of any size (a bundle of requests with 1 MiB subjects
// each). Keeps send an empty subject; real names are far smaller.
const MaxSubject = 1024

// MaxWorkloadPackage bounds the package digest of a requested workload
// identity, which the steward copies into the certificate and its audit
// log: the identity of a Keep is two SHA-256 digests and a Drawbridge
// Content-Digest value of a few hundred bytes (drawbridge parses no longer
// one than this), where unbounded it filled a certificate and a log line
// with as much as the request held (1 MiB).
const MaxWorkloadPackage = 4096

func (s *Server) issue(ctx context.Context, csrDER []byte) (*issued, error) {
	if err := s.alive(ctx); err != nil {
		return nil, err
	}
	req, err := csr.Parse(csrDER)
	if err != nil {
		return nil, err
	}
	if err := s.alive(ctx); err != nil {
		return nil, err
	}
	if n := len(req.CSR.RawSubject); n > MaxSubject {
		return nil, attest.Reject(CodeSubject, "the subject is %d bytes; the limit is %d (the steward copies it into the certificate; Keeps send an empty one)", n, MaxSubject)
	}
	var evidence *pkix.Extension
	var copied []pkix.Extension
	var workload *certext.Workload
	var workloadDER []byte
	for i := range req.Extensions {
		e := &req.Extensions[i]
		switch {
		case e.Id.Equal(oidSubjectAltName):
			return nil, attest.Reject(CodeExtensionSAN, "subject alternative names cannot be requested; the steward sets them")
		case e.Id.Equal(attest.OIDAttestedAs):
			return nil, attest.Reject(CodeExtensionAttested, "the attested-as extension (%v) is written only by the steward", attest.OIDAttestedAs)
		case e.Id.Equal(attest.OIDWorkload):
			if e.Critical {
				return nil, attest.Reject(CodeExtensionCritical, "the workload identity extension must not be critical")
			}
			w, err := certext.ParseWorkload(e.Value)
			if err != nil {
				return nil, attest.RejectErr(CodeWorkload, err, "malformed workload identity extension (%v)", err)
			}
			if n := len(w.Package); n > MaxWorkloadPackage {
				return nil, attest.Reject(CodeWorkload, "the workload identity's package digest is %d bytes; the limit is %d", n, MaxWorkloadPackage)
			}
			copied = append(copied, *e)
			workload, workloadDER = w, e.Value
		case isEvidenceOID(e.Id):
			if e.Critical {
				return nil, attest.Reject(CodeExtensionCritical, "the evidence extension %v must not be critical", e.Id)
			}
			if evidence != nil {
				return nil, attest.Reject(CodeEvidenceMultiple, "more than one evidence extension (%v and %v); send one", evidence.Id, e.Id)
			}
			evidence = e
		default:
			return nil, attest.Reject(CodeExtensionUnknown, "extension %v cannot be requested", e.Id)
		}
	}
	if evidence == nil {
		return nil, attest.Reject(CodeEvidenceMissing, "the request carries no attestation evidence extension")
	}
	v, ok := s.verifiers[evidence.Id.String()]
	if !ok {
		return nil, attest.Reject(CodeEvidenceUnsupported, "this steward has no verifier for evidence %v (%s); configure a policy for it", evidence.Id, evidenceName(evidence.Id))
	}
	claims, err := v.Verify(ctx, &attest.VerifyRequest{
		CSR:       req.CSR,
		Extension: *evidence,
		Now:       s.verifyTime(),
		Debug:     s.debug,
	})
	if aerr := s.alive(ctx); aerr != nil {
		// Whatever the verifier decided, it decided too late.
		return nil, aerr
	}
	if err != nil {
		if r, ok := attest.AsRejection(err); ok && validCode(r.Code) {
			return nil, r
		}
		return nil, attest.RejectErr(CodeEvidenceRejected, err, "%s evidence verification failed", evidenceName(evidence.Id))
	}
	if claims == nil || claims.Kind != kindOf(evidence.Id) {
		// A verifier bug; never certify claims about another TEE.
		return nil, attest.Reject(CodeInternal, "the %s verifier returned inconsistent claims", evidenceName(evidence.Id))
	}
	if claims.ReportData != nil && !s.debug {
		// After the key binding the verifier checked, the report data may
		// name the workload (attest.ReportDataWithWorkload); upstream Keeps
		// leave it zero. (A debug-mode Steward skips report-data checks,
		// as upstream, so that replayed debug evidence still works.)
		bound, err := attest.CheckWorkloadBinding(claims.Kind, claims.ReportData, workloadDER)
		if err != nil {
			return nil, attest.RejectErr(CodeWorkloadBinding, err, "the report data binds a workload identity other than the request's workload extension")
		}
		claims.WorkloadBound = bound
	}
	if evidence.Id.Equal(attest.OIDEvidenceKVM) {
		// Upstream copies the (empty) KVM extension into the leaf.
		copied = append([]pkix.Extension{*evidence}, copied...)
	}
	der, serial, err := s.sign(req, claims, copied)
	if err != nil {
		if r, ok := attest.AsRejection(err); ok {
			return nil, r
		}
		return nil, attest.RejectErr(CodeInternal, err, "could not sign the certificate")
	}
	return &issued{der: der, serial: serial, claims: claims, workload: workload}, nil
}

var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// kindOf is the TEE kind that evidence under oid attests.
func kindOf(oid asn1.ObjectIdentifier) attest.Kind {
	for _, k := range []attest.Kind{attest.KindNone, attest.KindSGX, attest.KindSNP, attest.KindTDX} {
		if o, _ := attest.EvidenceOID(k); o.Equal(oid) {
			return k
		}
	}
	return ""
}

// evidenceName names an evidence OID for messages; "" if oid is not one.
func evidenceName(oid asn1.ObjectIdentifier) string {
	switch {
	case oid.Equal(attest.OIDEvidenceKVM):
		return "no-hardware (KVM)"
	case oid.Equal(attest.OIDEvidenceSGX):
		return "SGX"
	case oid.Equal(attest.OIDEvidenceSNP):
		return "SEV-SNP"
	case oid.Equal(attest.OIDEvidenceTDX):
		return "TDX"
	}
	return ""
}

// validCode accepts the short dotted codes verifiers use, so that a code is
// safe as a metrics label and in a one-line reply.
func validCode(c string) bool {
	if c == "" || len(c) > 64 {
		return false
	}
	for _, r := range c {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// sign builds the leaf: upstream's profile (UUIDv4 serial, notBefore now,
// 28-day validity capped at the CA's notAfter, subject and key from the
// request, the configured SANs, EKU serverAuth+clientAuth) plus the key
// usage digitalSignature, the copied extensions (KVM marker, workload
// identity) and the attested-as extension. When the cap leaves no
// validity (the CA expired) it returns a CodeInternal rejection.
func (s *Server) sign(req *csr.Request, claims *attest.Claims, copied []pkix.Extension) ([]byte, *big.Int, error) {
	id, err := uuid.NewRandom()
	if err != nil {
		return nil, nil, fmt.Errorf("serial number: %w", err)
	}
	serial := new(big.Int).SetBytes(id[:])
	attested, err := (&certext.AttestedAs{Claims: *claims, StewardDebug: s.debug}).Extension()
	if err != nil {
		return nil, nil, err
	}
	caCert := s.ca.Chain[0]
	issued := s.now().UTC().Truncate(time.Second)
	notBefore := issued.Add(-Backdate)
	if notBefore.Before(caCert.NotBefore) {
		notBefore = caCert.NotBefore
	}
	notAfter := issued.Add(Validity)
	if notAfter.After(caCert.NotAfter) {
		notAfter = caCert.NotAfter
	}
	// Capped at the CA's notAfter, the certificate would end before it is
	// issued (or start after it ends): refuse rather than hand out a
	// certificate that no relying party accepts.
	switch {
	case !notAfter.After(issued):
		return nil, nil, attest.Reject(CodeInternal, "the steward's CA certificate expired at %s; the steward's operator must renew it (--crt)",
			caCert.NotAfter.UTC().Format(time.RFC3339))
	case !notAfter.After(notBefore):
		return nil, nil, attest.Reject(CodeInternal, "the steward's CA certificate is not valid before %s; check the steward's clock or its CA certificate (--crt)",
			caCert.NotBefore.UTC().Format(time.RFC3339))
	}
	tmpl := &x509.Certificate{
		SerialNumber:       serial,
		RawSubject:         req.CSR.RawSubject,
		NotBefore:          notBefore,
		NotAfter:           notAfter,
		KeyUsage:           x509.KeyUsageDigitalSignature,
		ExtKeyUsage:        []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:           s.dnsNames,
		IPAddresses:        s.ips,
		ExtraExtensions:    append(copied, attested),
		SignatureAlgorithm: s.ca.signatureAlgorithm(),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, req.CSR.PublicKey, s.ca.Key)
	if err != nil {
		return nil, nil, err
	}
	return der, serial, nil
}
