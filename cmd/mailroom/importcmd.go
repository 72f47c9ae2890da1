package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

func init() {
	register("import", "import mail into an IMPORT mailbox through the API: FILE.mbox, FILE.eml or a DIR of them (progress on stderr)", importMail)
}

// Import bounds: a request stays well under the gateway's body cap
// (base64 adds a third), a message under ingest's per-message limit.
const (
	importMaxBatch        = 1000
	importMaxRequestBytes = 16 << 20
	importMaxMessageBytes = 25 << 20
)

type importer struct {
	base, key, parent string
	batch             int
	client            *http.Client
	stderr            io.Writer
	progress          *progressBar

	pending      [][]byte
	pendingBytes int
	imported     int
	skipped      int
}

// importMail is `mailroom import [flags] PATH...`.
func importMail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: mailroom import [flags] FILE.mbox|FILE.eml|DIR...

Imports mail into an IMPORT mailbox through the REST API of a running
mailroom (the current context of mailroom login, or MAILROOM, default
http://127.0.0.1:8080, with the API key in
MAILROOM_KEY). An mbox file is split into its messages; any other file is one
message; a directory is read recursively (maildirs included). Importing the
same mail again is harmless: ingest recognizes it.

Flags:
`)
		fs.PrintDefaults()
	}
	user := fs.String("user", "me", "the user whose mailbox receives the mail")
	mailbox := fs.String("mailbox", "import", "the IMPORT mailbox's id (created when missing)")
	batch := fs.Int("batch", 100, "messages per request (1 to 1000)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("import: name at least one FILE.mbox, FILE.eml or DIR")
	}
	if *batch < 1 || *batch > importMaxBatch {
		return fmt.Errorf("import: -batch must be between 1 and %d", importMaxBatch)
	}
	t, err := (&cli{}).target() // the config's current context, MAILROOM and MAILROOM_KEY
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	base, key := t.server, t.key

	files, total, err := importFiles(fs.Args())
	if err != nil {
		return err
	}
	im := &importer{
		base: base, key: key, batch: *batch, stderr: stderr,
		parent: "users/" + url.PathEscape(*user) + "/mailboxes/" + url.PathEscape(*mailbox),
		client: &http.Client{Timeout: 5 * time.Minute},
	}
	if err := im.ensureMailbox(ctx, *user, *mailbox); err != nil {
		return err
	}
	im.progress = newProgressBar(stderr, total)
	for _, f := range files {
		if err := im.importFile(ctx, f); err != nil {
			im.progress.done()
			return err
		}
	}
	if err := im.flush(ctx); err != nil {
		im.progress.done()
		return err
	}
	im.progress.done()
	fmt.Fprintf(stdout, "imported %d messages into %s", im.imported, im.parent)
	if im.skipped > 0 {
		fmt.Fprintf(stdout, " (%d skipped: see above)", im.skipped)
	}
	fmt.Fprintln(stdout)
	return nil
}

// importFiles lists the regular files under paths, sorted, and their total size.
func importFiles(paths []string) ([]string, int64, error) {
	var files []string
	var total int64
	for _, p := range paths {
		err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path != p && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() || (path != p && strings.HasPrefix(d.Name(), ".")) {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			files = append(files, path)
			total += info.Size()
			return nil
		})
		if err != nil {
			return nil, 0, fmt.Errorf("import: %w", err)
		}
	}
	sort.Strings(files)
	return files, total, nil
}

// ensureMailbox creates the IMPORT mailbox unless it exists.
func (im *importer) ensureMailbox(ctx context.Context, user, id string) error {
	status, body, err := im.do(ctx, http.MethodGet, "/v1/"+im.parent, nil)
	if err != nil {
		return err
	}
	switch status {
	case http.StatusOK:
		var mb struct{ Provider string }
		_ = json.Unmarshal(body, &mb)
		if mb.Provider != "" && mb.Provider != "PROVIDER_IMPORT" && mb.Provider != "IMPORT" {
			return fmt.Errorf("import: %s is a %s mailbox; only IMPORT mailboxes take imported mail", im.parent, mb.Provider)
		}
		return nil
	case http.StatusNotFound:
	default:
		return apiError("reading the mailbox", status, body)
	}
	q := url.Values{"mailboxId": {id}}
	status, body, err = im.do(ctx, http.MethodPost, "/v1/users/"+url.PathEscape(user)+"/mailboxes?"+q.Encode(),
		map[string]string{"provider": "IMPORT", "displayName": "Imported mail"})
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return apiError("creating the mailbox", status, body)
	}
	fmt.Fprintf(im.stderr, "created the IMPORT mailbox %s\n", im.parent)
	return nil
}

// importFile queues the messages of one file: an mbox is split, anything
// else is one message.
func (im *importer) importFile(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	head, _ := r.Peek(5)
	if string(head) != "From " {
		raw, err := io.ReadAll(io.LimitReader(r, importMaxMessageBytes+1))
		if err != nil {
			return fmt.Errorf("import: %s: %w", path, err)
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return fmt.Errorf("import: %s: %w", path, err)
		}
		im.progress.add(fileSize(f))
		return im.add(ctx, path, raw)
	}
	return splitMbox(r, func(raw []byte, size int) error {
		im.progress.add(int64(size))
		return im.add(ctx, path, raw)
	})
}

func fileSize(f *os.File) int64 {
	if info, err := f.Stat(); err == nil {
		return info.Size()
	}
	return 0
}

// splitMbox calls fn with each message of an mbox (mboxo or mboxrd): the
// "From " separator line dropped, ">From " lines unquoted, and the size the
// message took in the file. A message over the size limit is cut at the
// limit (ingest then refuses it, and it is skipped).
func splitMbox(r *bufio.Reader, fn func(raw []byte, size int) error) error {
	var msg bytes.Buffer
	size, started, prevBlank := 0, false, true
	emit := func() error {
		if !started {
			return nil
		}
		raw := bytes.TrimRight(msg.Bytes(), "\r\n")
		out := make([]byte, len(raw), len(raw)+2)
		copy(out, raw)
		err := fn(append(out, '\r', '\n'), size)
		msg.Reset()
		size = 0
		return err
	}
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: take it in pieces.
			for errors.Is(err, bufio.ErrBufferFull) {
				size += len(line)
				if msg.Len() < importMaxMessageBytes {
					msg.Write(line)
				}
				line, err = r.ReadSlice('\n')
			}
		}
		if len(line) > 0 {
			trimmed := bytes.TrimRight(line, "\r\n")
			switch {
			case prevBlank && bytes.HasPrefix(line, []byte("From ")):
				if err := emit(); err != nil {
					return err
				}
				started = true
				size += len(line)
			default:
				size += len(line)
				if isQuotedFrom(trimmed) {
					line = line[1:]
				}
				if msg.Len() < importMaxMessageBytes {
					msg.Write(line)
				}
			}
			prevBlank = len(trimmed) == 0
		}
		if err == io.EOF {
			return emit()
		}
		if err != nil {
			return fmt.Errorf("import: reading mbox: %w", err)
		}
	}
}

// isQuotedFrom matches ">From ", ">>From ", …: mboxrd's escaping.
func isQuotedFrom(line []byte) bool {
	i := 0
	for i < len(line) && line[i] == '>' {
		i++
	}
	return i > 0 && bytes.HasPrefix(line[i:], []byte("From "))
}

// add queues a message and sends the queue when a batch is full.
func (im *importer) add(ctx context.Context, path string, raw []byte) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	if len(raw) > importMaxMessageBytes {
		im.skip(path, "larger than 25 MiB")
		return nil
	}
	if im.pendingBytes+len(raw) > importMaxRequestBytes {
		if err := im.flush(ctx); err != nil {
			return err
		}
	}
	im.pending = append(im.pending, raw)
	im.pendingBytes += len(raw)
	if len(im.pending) >= im.batch {
		return im.flush(ctx)
	}
	return nil
}

func (im *importer) skip(path, why string) {
	im.skipped++
	im.progress.note(fmt.Sprintf("skipped a message of %s: %s", path, why))
}

// flush sends the queued messages. The API takes a batch whole or not at
// all; when it refuses one as invalid, each message is sent alone, so that
// one bad message costs only itself.
func (im *importer) flush(ctx context.Context) error {
	batch := im.pending
	im.pending, im.pendingBytes = nil, 0
	if len(batch) == 0 {
		return nil
	}
	status, body, err := im.send(ctx, batch)
	if err != nil {
		return err
	}
	switch {
	case status == http.StatusOK:
		im.imported += len(batch)
		im.progress.count(len(batch))
		return nil
	case (status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge) && len(batch) > 1:
		for _, raw := range batch {
			status, body, err := im.send(ctx, [][]byte{raw})
			if err != nil {
				return err
			}
			switch status {
			case http.StatusOK:
				im.imported++
				im.progress.count(1)
			case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
				im.skip("the input", apiMessage(body))
			default:
				return apiError("importing", status, body)
			}
		}
		return nil
	case status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge:
		im.skip("the input", apiMessage(body))
		return nil
	}
	return apiError("importing", status, body)
}

// send posts one batch, retrying what may pass later (503, 429, the network).
func (im *importer) send(ctx context.Context, batch [][]byte) (int, []byte, error) {
	type raw struct {
		Raw []byte `json:"raw"` // encoding/json writes base64, as the API wants
	}
	req := struct {
		Messages []raw `json:"messages"`
	}{}
	for _, b := range batch {
		req.Messages = append(req.Messages, raw{b})
	}
	var (
		status int
		body   []byte
		err    error
	)
	for attempt := 1; attempt <= 5; attempt++ {
		status, body, err = im.do(ctx, http.MethodPost, "/v1/"+im.parent+"/messages:import", req)
		retry := err != nil || status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests ||
			status == http.StatusBadGateway || status == http.StatusGatewayTimeout
		if !retry || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		case <-time.After(time.Duration(attempt*attempt) * 200 * time.Millisecond):
		}
	}
	return status, body, err
}

func (im *importer) do(ctx context.Context, method, path string, in any) (int, []byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, im.base+path, body)
	if err != nil {
		return 0, nil, fmt.Errorf("import: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+im.key)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := im.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("import: %s: %w", im.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("import: %w", err)
	}
	return resp.StatusCode, b, nil
}

// apiMessage is the message of a google.rpc.Status body.
func apiMessage(body []byte) string {
	var st struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &st) == nil && st.Message != "" {
		return st.Message
	}
	return strings.TrimSpace(string(body))
}

func apiError(what string, status int, body []byte) error {
	return fmt.Errorf("import: %s: %d %s: %s", what, status, http.StatusText(status), apiMessage(body))
}

// progressBar draws one line on stderr: a bar by bytes read, the messages
// imported, and the rate. Notes print above it.
type progressBar struct {
	w        io.Writer
	total    int64
	read     int64
	messages int
	start    time.Time
	last     time.Time
}

func newProgressBar(w io.Writer, total int64) *progressBar {
	return &progressBar{w: w, total: max(total, 1), start: time.Now()}
}

func (p *progressBar) add(n int64) { p.read += n; p.draw(false) }

func (p *progressBar) count(n int) { p.messages += n; p.draw(false) }

func (p *progressBar) note(s string) {
	fmt.Fprintf(p.w, "\r\033[K%s\n", s)
	p.draw(true)
}

func (p *progressBar) done() {
	p.read = p.total
	p.draw(true)
	fmt.Fprintln(p.w)
}

func (p *progressBar) draw(force bool) {
	now := time.Now()
	if !force && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	const width = 30
	frac := min(float64(p.read)/float64(p.total), 1)
	filled := int(frac * width)
	rate := float64(p.messages) / max(now.Sub(p.start).Seconds(), 0.001)
	fmt.Fprintf(p.w, "\r[%s%s] %3.0f%%  %d messages  %.1f/%.1f MB  %.0f msg/s",
		strings.Repeat("#", filled), strings.Repeat(".", width-filled), frac*100,
		p.messages, float64(p.read)/1e6, float64(p.total)/1e6, rate)
}
