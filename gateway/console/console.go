// Package console serves mailroom's web console: the static files that
// `make console` builds from console/ (Vite + TypeScript) into dist, which
// are committed and embedded in the gateway's binary, so that a Go build
// alone serves them. The console calls the public REST API like any other
// client; this package serves files only.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed dist
var dist embed.FS

// Prefix is the path the console is served under.
const Prefix = "/console/"

// CSP is the Content-Security-Policy of every console response: scripts,
// styles and API calls from the gateway's own origin only (no inline code,
// no third-party origin), no framing, no <base>, forms posting only here.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// Cache lifetimes: the assets' names carry a hash of their content, so they
// never change; index.html names them and is revalidated on every load.
const (
	assetCache = "public, max-age=31536000, immutable"
	indexCache = "no-cache"
)

type file struct {
	data  []byte
	ctype string
	etag  string
	cache string
}

// Handler serves the console under Prefix.
type Handler struct {
	files map[string]file // by path below Prefix: "" is index.html
}

// New returns the handler of the embedded console.
func New() (*Handler, error) { return NewFS(dist, "dist") }

// NewFS returns a handler of the console built into dir of fsys.
func NewFS(fsys fs.FS, dir string) (*Handler, error) {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	h := &Handler{files: map[string]file{}}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		ctype := mime.TypeByExtension(path.Ext(p))
		if ctype == "" {
			ctype = http.DetectContentType(data)
		}
		sum := sha256.Sum256(data)
		f := file{data: data, ctype: ctype, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`, cache: assetCache}
		if p == "index.html" {
			f.cache = indexCache
			p = ""
		}
		h.files[p] = f
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	if _, ok := h.files[""]; !ok {
		return nil, fmt.Errorf("console: %s has no index.html (run make console)", dir)
	}
	return h, nil
}

// ServeHTTP serves GET and HEAD of /console/ (index.html) and of the built
// assets, each with the security headers; anything else is 404 or 405.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == strings.TrimSuffix(Prefix, "/") {
		http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
		return
	}
	rel, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if rel == "index.html" {
		rel = ""
	}
	f, found := h.files[rel]
	if !ok || !found {
		hd.Set("Cache-Control", "no-store")
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	hd.Set("Content-Type", f.ctype)
	hd.Set("Cache-Control", f.cache)
	hd.Set("ETag", f.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.data))
}
