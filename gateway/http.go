package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"mailroom.dev/gateway/console"
	"mailroom.dev/gen/go/openapi"
	"mailroom.dev/platform/apierror"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/telemetry"
)

// Route labels of requests that no route matched.
const unmatchedRoute = "unmatched"

// buildHandler assembles the middleware chain, outermost first: a holder
// for the route the request matches, otelhttp (a span per request, named
// after the route once it is known), the access log and metrics, then the
// routes.
func (g *Gateway) buildHandler() http.Handler {
	root := http.NewServeMux()
	handle := func(path string, h http.Handler) {
		root.Handle("GET "+path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			setRoute(r.Context(), path)
			h.ServeHTTP(w, r)
		}))
	}
	handle("/healthz", http.HandlerFunc(healthz))
	handle("/readyz", http.HandlerFunc(g.readyz))
	handle("/metrics", g.limitKeys(g.requireAdmin(g.metricsHandler())))
	handle("/openapi.json", http.HandlerFunc(serveOpenAPI))
	handle("/oauth/google/callback", http.HandlerFunc(g.handleGoogleCallback))
	root.Handle("POST /push/gmail", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setRoute(r.Context(), "/push/gmail")
		g.handleGmailPush(w, r)
	}))
	handle("/oauth/google/start", http.HandlerFunc(g.handleGoogleStart))
	if g.console != nil {
		// The web console: static files, calling the API below like any client.
		handle(console.Prefix, g.console)
		handle(strings.TrimSuffix(console.Prefix, "/"), g.console)
	}
	root.Handle("/", g.limitKeys(g.limitBody(g.streams.wrap(lastEventID(g.mux)))))

	h := g.observe(root)
	h = otelhttp.NewHandler(h, "http.server",
		otelhttp.WithSpanNameFormatter(spanName),
		otelhttp.WithFilter(traced),
	)
	return withRouteHolder(h)
}

// traced leaves probes and scrapes out of traces: they come every few
// seconds and say nothing about a request's path through the services.
func traced(r *http.Request) bool {
	switch r.URL.Path {
	case "/healthz", "/readyz", "/metrics":
		return false
	}
	return true
}

// routeHolder carries the route pattern a request matched (never its raw
// path, which holds ids) from the router back out to the span, the log
// line and the metrics.
type routeHolder struct{ route string }

type routeKey struct{}

func withRouteHolder(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), routeKey{}, &routeHolder{})))
	})
}

func routeOf(ctx context.Context) string {
	if h, ok := ctx.Value(routeKey{}).(*routeHolder); ok {
		return h.route
	}
	return ""
}

// setRoute records route as the request's route and names its span after it.
func setRoute(ctx context.Context, route string) {
	if h, ok := ctx.Value(routeKey{}).(*routeHolder); ok {
		h.route = route
	}
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(attribute.String("http.route", route))
}

// spanName names a request's span "METHOD route", or "METHOD" alone before
// the route is known (otelhttp renames the span after the handler).
func spanName(_ string, r *http.Request) string {
	if route := routeOf(r.Context()); route != "" {
		return methodLabel(r.Method) + " " + route
	}
	return methodLabel(r.Method)
}

// methodLabel bounds the methods that label spans and metrics.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// metrics are the gateway's Prometheus metrics, in a registry of its own
// so that several gateways can live in one process (tests), or in the one
// registry of `mailroom dev` (Telemetry.Registerer).
type metrics struct {
	gatherer prometheus.Gatherer // what /metrics serves
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(tel telemetry.Providers) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailroom_http_requests_total",
			Help: "HTTP requests served by the gateway, by method, route pattern and status code.",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mailroom_http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by method, route pattern and status code.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route", "code"}),
	}
	reg := tel.Registerer
	var gatherers prometheus.Gatherers
	if reg == nil {
		own := prometheus.NewRegistry()
		reg, gatherers = own, append(gatherers, own)
	}
	// The meter provider's metrics (otelhttp's, otelgrpc's; in mailroom
	// dev every service's) are served beside the gateway's own.
	if tel.Gatherer != nil {
		gatherers = append(gatherers, tel.Gatherer)
	}
	m.gatherer = gatherers
	// Several gateways in one process on one registry (the end-to-end
	// tests, each starting a suite) share the series registered first.
	register := func(c prometheus.Collector) (prometheus.Collector, error) {
		err := reg.Register(c)
		if already, ok := err.(prometheus.AlreadyRegisteredError); ok {
			return already.ExistingCollector, nil
		}
		return c, err
	}
	requests, err := register(m.requests)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	duration, err := register(m.duration)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	m.requests, m.duration = requests.(*prometheus.CounterVec), duration.(*prometheus.HistogramVec)
	for _, c := range []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if _, err := register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return m, nil
}

// observe writes the access log line and the metrics of each request. Only
// the route pattern is recorded, never the path or the query (filters may
// hold addresses), nor any header.
func (g *Gateway) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				g.logger.ErrorContext(r.Context(), "panic in http handler", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if !sw.wroteHeader {
					g.writeError(sw, r, status.Error(codes.Internal, "internal error"))
				}
			}
			route := routeOf(r.Context())
			if route == "" {
				route = unmatchedRoute
			}
			// otelhttp records the raw path, which holds user and mail ids:
			// the span keeps the route template instead.
			trace.SpanFromContext(r.Context()).SetAttributes(attribute.String("url.path", route))
			code := sw.status()
			d := time.Since(start)
			method := methodLabel(r.Method)
			g.metrics.requests.WithLabelValues(method, route, strconv.Itoa(code)).Inc()
			g.metrics.duration.WithLabelValues(method, route, strconv.Itoa(code)).Observe(d.Seconds())

			level := slog.LevelInfo
			switch {
			case !traced(r):
				level = slog.LevelDebug // probes and scrapes, every few seconds
			case code >= 500:
				level = slog.LevelError
			}
			g.logger.LogAttrs(r.Context(), level, "http request",
				slog.String("method", method),
				slog.String("route", route),
				slog.Int("status", code),
				slog.Float64("duration_ms", float64(d.Microseconds())/1000),
				slog.Int64("bytes", sw.bytes),
			)
		}()
		next.ServeHTTP(sw, r)
	})
}

// statusWriter remembers the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	code        int
	bytes       int64
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader && code >= 200 {
		w.code = code
		w.wroteHeader = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.code = http.StatusOK
		w.wroteHeader = true
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		if !w.wroteHeader {
			w.code = http.StatusOK
			w.wroteHeader = true
		}
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// writeError writes err as grpc-gateway writes its own errors.
func (g *Gateway) writeError(w http.ResponseWriter, r *http.Request, err error) {
	_, out := runtime.MarshalerForRequest(g.mux, r)
	runtime.HTTPError(r.Context(), g.mux, out, w, r, err)
}

func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// readyz answers 200 when every service reports SERVING on grpc.health.v1,
// and 503 naming the ones that do not (or while the gateway shuts down).
func (g *Gateway) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if g.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready: shutting down\n"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.ReadyTimeout)
	defer cancel()
	problems := make([]string, len(g.backends))
	var wg sync.WaitGroup
	for i, b := range g.backends {
		wg.Go(func() {
			resp, err := b.health.Check(ctx, &healthpb.HealthCheckRequest{Service: b.service})
			switch {
			case err != nil:
				problems[i] = b.name + ": " + status.Code(err).String()
			case resp.GetStatus() != healthpb.HealthCheckResponse_SERVING:
				problems[i] = b.name + ": " + resp.GetStatus().String()
			}
		})
	}
	wg.Wait()
	var notReady []string
	for _, p := range problems {
		if p != "" {
			notReady = append(notReady, p)
		}
	}
	if len(notReady) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready: " + strings.Join(notReady, ", ") + "\n"))
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// metricsHandler serves the Prometheus metrics.
func (g *Gateway) metricsHandler() http.Handler {
	return promhttp.HandlerFor(g.metrics.gatherer, promhttp.HandlerOpts{})
}

// requireAdmin lets through a caller whose credential (an API key,
// exchanged with auth, or an identity token) is an admin's or a
// service's: 401 without one, 403 for anybody else.
func (g *Gateway) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cred, err := bearer(r)
		if err != nil {
			g.writeError(w, r, err)
			return
		}
		token := cred
		if !authn.LooksLikeJWT(cred) {
			ctx, cancel := context.WithTimeout(r.Context(), g.cfg.AuthTimeout)
			token, err = g.keys.Token(ctx, cred)
			cancel()
			if err != nil {
				g.writeError(w, r, g.exchangeError(r.Context(), err))
				return
			}
		}
		caller, err := g.verifier.Verify(r.Context(), token)
		if err != nil {
			g.writeError(w, r, status.Error(codes.Unauthenticated, "invalid identity token"))
			return
		}
		if !caller.Admin && caller.Service == "" {
			g.writeError(w, r, status.Error(codes.PermissionDenied, "/metrics is for admins (or MAILROOM_METRICS_ADDR, an internal address)"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openapi.JSON)
}

// bodyLimit records whether a request's body went over the cap, or over
// the bytes in flight.
type bodyLimit struct {
	limit      int64
	exceeded   atomic.Bool
	overloaded atomic.Bool
}

type bodyLimitKey struct{}

// inflight counts the request body bytes that requests hold, up to limit.
// A request reserves its declared Content-Length before its body is read,
// or, when it declares none (chunked), each piece as it reads it.
// Requests never wait for room: one that finds none gets 503 with
// Retry-After at once, so that a client that streams slowly cannot make
// the others queue.
type inflight struct {
	mu    sync.Mutex
	used  int64
	limit int64
}

func (f *inflight) tryAcquire(n int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.used+n > f.limit {
		return false
	}
	f.used += n
	return true
}

func (f *inflight) release(n int64) {
	f.mu.Lock()
	f.used -= n
	f.mu.Unlock()
}

// reasonOverloaded is the ErrorInfo reason of a request refused because
// the gateway holds as many body bytes as it may.
const reasonOverloaded = "OVERLOADED"

// overloaded is the error of a request refused for want of room in the
// bytes in flight; the caller sets Retry-After.
func overloaded() error {
	st := status.New(codes.Unavailable, "the gateway is receiving as many request bytes as it may; retry in 1 s")
	if d, err := st.WithDetails(
		&errdetails.ErrorInfo{Reason: reasonOverloaded, Domain: apierror.Domain},
		&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)},
	); err == nil {
		st = d
	}
	return st.Err()
}

// limitedBody reads through http.MaxBytesReader and notes when the cap is
// hit: grpc-gateway turns every decode error into InvalidArgument, and the
// error handler needs to tell this one apart to answer 413. A body of
// undeclared length reserves what it reads in the bytes in flight, and
// stops (503) when there is no room.
type limitedBody struct {
	io.ReadCloser
	limit    *bodyLimit
	inflight *inflight
	reserve  bool  // reserve as it reads
	held     int64 // reserved by this body
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		b.limit.exceeded.Store(true)
	}
	if b.reserve && n > 0 {
		if !b.inflight.tryAcquire(int64(n)) {
			b.limit.overloaded.Store(true)
			return 0, errors.New("gateway: no room for more request bytes")
		}
		b.held += int64(n)
	}
	return n, err
}

// limitBody caps request bodies at the body limit without reading them
// whole: a body that streams past the cap stops there (a declared
// Content-Length over it is refused before the body is read, once the
// route is known, in the mux middleware). It reserves the body's bytes in
// flight. (ReadTimeout needs no help for streams: net/http lifts the read
// deadline once the body is read, and TestReadTimeout keeps it so.)
func (g *Gateway) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lim := &bodyLimit{limit: g.cfg.MaxBodyBytes}
		body := &limitedBody{ReadCloser: http.MaxBytesReader(w, r.Body, lim.limit), limit: lim, inflight: g.inflight}
		switch {
		case r.ContentLength > 0 && r.ContentLength <= lim.limit:
			if !g.inflight.tryAcquire(r.ContentLength) {
				w.Header().Set("Retry-After", "1")
				g.writeError(w, r, overloaded())
				return
			}
			defer g.inflight.release(r.ContentLength)
		case r.ContentLength < 0:
			body.reserve = true
			defer func() { g.inflight.release(body.held) }()
		}
		r = r.WithContext(context.WithValue(r.Context(), bodyLimitKey{}, lim))
		r.Body = body
		next.ServeHTTP(w, r)
	})
}
