package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"
)

// cli is the state the API commands share: where output goes and the
// global flags.
type cli struct {
	stdout, stderr io.Writer
	output         string          // -o: table, json, yaml
	contextName    string          // --context
	headers        map[string]bool // header lines of the table being written
}

// apiClient calls the REST API with protojson and the generated types, so
// field names are the API's own.
type apiClient struct {
	target target
	http   *http.Client
}

func (c *cli) api() (*apiClient, error) {
	t, err := c.target()
	if err != nil {
		return nil, err
	}
	return &apiClient{target: t}, nil
}

// restError is a google.rpc.Status the gateway answered with.
type restError struct {
	httpStatus int
	status     *status.Status
}

func (e *restError) Error() string {
	if e.status.GetMessage() != "" {
		return e.status.GetMessage()
	}
	return fmt.Sprintf("HTTP %d", e.httpStatus)
}

var unmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}

// do sends body (a proto message or nil) and decodes the answer into out
// (nil to discard it).
func (a *apiClient) do(ctx context.Context, method, path string, body, out proto.Message) error {
	var r io.Reader
	if body != nil {
		b, err := protojson.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	resp, err := a.send(ctx, method, path, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if out == nil {
		return nil
	}
	if err := unmarshal.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

// send makes the request and turns a non-2xx answer into an restError.
func (a *apiClient) send(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, a.target.server+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.target.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := a.http
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach %s: %w", a.target.server, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	st := &status.Status{}
	if unmarshal.Unmarshal(b, st) != nil || st.GetMessage() == "" {
		st.Message = fmt.Sprintf("HTTP %d from %s %s: %s", resp.StatusCode, method, path, strings.TrimSpace(string(b)))
	}
	return nil, &restError{httpStatus: resp.StatusCode, status: st}
}

// stream reads a server-streaming method: grpc-gateway sends one JSON
// object a line, {"result": …} or {"error": status}.
func (a *apiClient) stream(ctx context.Context, path string, each func(json.RawMessage) error) error {
	resp, err := a.send(ctx, "GET", path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var chunk struct {
			Result json.RawMessage `json:"result"`
			Error  json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(line, &chunk); err != nil {
			return fmt.Errorf("GET %s: %w", path, err)
		}
		if len(chunk.Error) > 0 && string(chunk.Error) != "null" {
			st := &status.Status{}
			_ = unmarshal.Unmarshal(chunk.Error, st)
			return &restError{httpStatus: resp.StatusCode, status: st}
		}
		if err := each(chunk.Result); err != nil {
			return err
		}
	}
	return sc.Err()
}

// format is the output format: -o, else a table.
func (c *cli) format() (string, error) {
	switch c.output {
	case "", "table":
		return "table", nil
	case "json", "yaml":
		return c.output, nil
	}
	return "", usagef("-o %q: want table, json or yaml", c.output)
}

// print writes m as JSON or YAML with the API's field names, or calls
// table for the human view.
func (c *cli) print(m proto.Message, table func(tw *tabwriter.Writer)) error {
	f, err := c.format()
	if err != nil {
		return err
	}
	switch f {
	case "json", "yaml":
		b, err := stableJSON(m, true)
		if err != nil {
			return err
		}
		if f == "yaml" {
			if b, err = yaml.JSONToYAML(b); err != nil {
				return err
			}
		}
		_, err = c.stdout.Write(b)
		return err
	}
	return c.table(table)
}

// table lays out rows with tabwriter and, when colour is on, makes the
// header lines bold afterwards (escape codes inside cells would upset the
// column widths).
func (c *cli) table(rows func(tw *tabwriter.Writer)) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	c.headers = map[string]bool{}
	rows(tw)
	if err := tw.Flush(); err != nil {
		return err
	}
	out := buf.Bytes()
	if c.colour() {
		lines := strings.SplitAfter(buf.String(), "\n")
		for i, l := range lines {
			if c.headers[strings.Join(strings.Fields(l), " ")] {
				lines[i] = "\x1b[1m" + strings.TrimRight(l, " \n") + "\x1b[0m\n"
			}
		}
		out = []byte(strings.Join(lines, ""))
	}
	_, err := c.stdout.Write(out)
	return err
}

// colour reports whether stdout is a terminal and NO_COLOR is unset.
func (c *cli) colour() bool {
	if _, set := os.LookupEnv("NO_COLOR"); set {
		return false
	}
	f, ok := c.stdout.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// bold and dim style table headers and secondary text when colour is on.
func (c *cli) bold(s string) string {
	if !c.colour() {
		return s
	}
	return "\x1b[1m" + s + "\x1b[0m"
}

// header writes a table's header line, made bold by table on a terminal.
func (c *cli) header(tw *tabwriter.Writer, cols ...string) {
	if c.headers != nil {
		c.headers[strings.Join(strings.Fields(strings.Join(cols, " ")), " ")] = true
	}
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
}

func ts(t interface{ AsTime() time.Time }, valid bool) string {
	if !valid {
		return ""
	}
	return t.AsTime().Local().Format("2006-01-02 15:04")
}

// short drops the resource name's parents: users/ada/mailboxes/inbox → inbox.
func short(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[i+1:]
	}
	return name
}

// enumShort drops an enum value's prefix: PROVIDER_IMPORT → IMPORT.
func enumShort(v fmt.Stringer, prefix string) string {
	return strings.TrimPrefix(v.String(), prefix)
}

// stableJSON is protojson's encoding (the API's field names) with stable
// whitespace (protojson varies it on purpose), indented or on one line,
// ending in a newline.
func stableJSON(m proto.Message, indent bool) ([]byte, error) {
	b, err := protojson.Marshal(m)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if indent {
		err = json.Indent(&buf, b, "", "  ")
	} else {
		err = json.Compact(&buf, b)
	}
	if err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}
