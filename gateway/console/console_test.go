package console_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"mailroom.dev/gateway/console"
)

func get(t *testing.T, h http.Handler, method, path string, hdr ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func checkSecurityHeaders(t *testing.T, r *http.Response) {
	t.Helper()
	for k, want := range map[string]string{
		"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
	} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

// TestEmbeddedConsole serves the committed build: index.html at /console/
// (revalidated every time), the hashed assets it names with a long cache,
// and nothing inline that the CSP would block.
func TestEmbeddedConsole(t *testing.T) {
	h, err := console.New()
	if err != nil {
		t.Fatal(err)
	}
	r := get(t, h, http.MethodGet, "/console/")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("GET /console/: %d", r.StatusCode)
	}
	checkSecurityHeaders(t, r)
	if got := r.Header.Get("Cache-Control"); got != "no-cache" {
		t.Errorf("index Cache-Control = %q, want no-cache", got)
	}
	if got := r.Header.Get("Content-Type"); !strings.HasPrefix(got, "text/html") {
		t.Errorf("index Content-Type = %q", got)
	}
	html := body(t, r)
	// No inline script or style: every <script> has a src, no style attributes or elements.
	if regexp.MustCompile(`<script(?:\s+type="module")?\s*>|<style|style="`).MatchString(html) {
		t.Errorf("index.html has inline script or style, which the CSP blocks:\n%s", html)
	}
	assets := regexp.MustCompile(`(?:src|href)="(/console/assets/[^"]+)"`).FindAllStringSubmatch(html, -1)
	if len(assets) < 2 {
		t.Fatalf("index.html names %d assets, want the script and the stylesheet:\n%s", len(assets), html)
	}
	for _, a := range assets {
		r := get(t, h, http.MethodGet, a[1])
		if r.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", a[1], r.StatusCode)
			continue
		}
		checkSecurityHeaders(t, r)
		if got := r.Header.Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
			t.Errorf("%s Cache-Control = %q", a[1], got)
		}
		ct := r.Header.Get("Content-Type")
		switch {
		case strings.HasSuffix(a[1], ".js") && !strings.Contains(ct, "javascript"),
			strings.HasSuffix(a[1], ".css") && !strings.HasPrefix(ct, "text/css"):
			t.Errorf("%s Content-Type = %q", a[1], ct)
		}
		// Revalidation with the ETag answers 304.
		if r2 := get(t, h, http.MethodGet, a[1], "If-None-Match", r.Header.Get("ETag")); r2.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with its ETag: %d, want 304", a[1], r2.StatusCode)
		}
	}
}

func TestConsoleRoutes(t *testing.T) {
	h, err := console.NewFS(fstest.MapFS{
		"dist/index.html":        {Data: []byte("<!doctype html><title>c</title>")},
		"dist/assets/app-1.js":   {Data: []byte("console.log(1)")},
		"dist/assets/app-1.css":  {Data: []byte("body{}")},
		"dist/assets/logo-1.svg": {Data: []byte("<svg/>")},
	}, "dist")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, path string
		code         int
		want         string // a prefix of the body, or of Location for redirects
	}{
		{"GET", "/console/", 200, "<!doctype html>"},
		{"GET", "/console/index.html", 200, "<!doctype html>"},
		{"HEAD", "/console/", 200, ""},
		{"GET", "/console/assets/app-1.js", 200, "console.log(1)"},
		{"GET", "/console", 301, "/console/"},
		{"GET", "/console/assets/", 404, "not found"},
		{"GET", "/console/assets/missing.js", 404, "not found"},
		{"GET", "/console/../go.mod", 404, "not found"},
		{"GET", "/consolex", 404, "not found"},
		{"POST", "/console/", 405, "method not allowed"},
	} {
		r := get(t, h, tc.method, tc.path)
		if r.StatusCode != tc.code {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, r.StatusCode, tc.code)
			continue
		}
		checkSecurityHeaders(t, r)
		got := body(t, r)
		if tc.code == 301 {
			got = r.Header.Get("Location")
		}
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s %s: %q, want it to start with %q", tc.method, tc.path, got, tc.want)
		}
		if tc.code == 404 && r.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s: a 404 is cached: %q", tc.method, tc.path, r.Header.Get("Cache-Control"))
		}
	}
	if _, err := console.NewFS(fstest.MapFS{"dist/assets/a.js": {Data: []byte("x")}}, "dist"); err == nil {
		t.Error("a build without index.html was accepted")
	}
}
