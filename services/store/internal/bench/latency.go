package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	storev1 "mailroom.dev/gen/go/mailroom/store/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/services/store/internal/grpcapi"
	"mailroom.dev/services/store/internal/mailstore"
)

// PageSize is the page size the latency queries ask for (the API's default).
const PageSize = 50

// Query is one ListMessages call of the latency mix.
type Query struct {
	// Kind names the shape of the query, for the report.
	Kind   string
	User   string
	Filter string
	// Page is 1 for a first page; a later page is reached by listing the
	// pages before it first, untimed.
	Page int
}

// Mix returns n queries over f's users: mostly first pages of the whole
// list, then later pages, one category, and the other filters.
func Mix(f Fixture, n int, seed uint64) []Query {
	r := rand.New(rand.NewPCG(seed, 7))
	day := f.End.Add(-24 * time.Hour).UTC().Format(time.RFC3339)
	qs := make([]Query, n)
	for i := range qs {
		q := Query{User: UserID(r.IntN(f.Users)), Page: 1}
		switch p := r.IntN(100); {
		case p < 50:
			q.Kind = "first page"
		case p < 65:
			q.Kind, q.Page = "later page", 2+r.IntN(4)
		case p < 80:
			q.Kind, q.Filter = "category", fmt.Sprintf("category = %q", Categories[r.IntN(len(Categories))])
		case p < 85:
			// The sender of one of the user's messages.
			q.Kind, q.Filter = "from", fmt.Sprintf("from = %q", Message(q.User, r.IntN(f.PerUser), f.End).FromAddress)
		case p < 90:
			q.Kind, q.Filter = "unclassified", "classified = false"
		case p < 95:
			q.Kind, q.Filter = "needs reply", "needs_reply = true"
		default:
			q.Kind, q.Filter = "mailbox, received after", fmt.Sprintf("mailbox = \"users/me/mailboxes/work\" AND received_time > %q", day)
		}
		qs[i] = q
	}
	return qs
}

// Lister lists one page: the caller's user, filter, page token; it returns
// the messages listed and the next page token.
type Lister func(ctx context.Context, user, filter, token string) (n int, next string, err error)

// RepoLister lists through the domain service and the repository.
func RepoLister(svc *mailstore.Service) Lister {
	return func(ctx context.Context, user, filter, token string) (int, string, error) {
		p, err := svc.List(ctx, user, mailstore.ListRequest{Filter: filter, PageSize: PageSize, PageToken: token})
		return len(p.Messages), p.NextPageToken, err
	}
}

// GRPCLister lists through the gRPC handler (authorization, conversion to
// protobuf and its encoding included), called in process as the user.
func GRPCLister(svc *mailstore.Service) Lister {
	srv := grpcapi.New(svc, nil, nil)
	return func(ctx context.Context, user, filter, token string) (int, string, error) {
		ctx = authn.NewContext(ctx, authn.Caller{User: user})
		resp, err := srv.ListMessages(ctx, &storev1.ListMessagesRequest{
			Parent: "users/me", Filter: filter, PageSize: PageSize, PageToken: token,
		})
		if err != nil {
			return 0, "", err
		}
		if _, err := proto.Marshal(resp); err != nil {
			return 0, "", err
		}
		return len(resp.GetMessages()), resp.GetNextPageToken(), nil
	}
}

// HTTPLister lists through the REST gateway at baseURL with an admin API
// key.
func HTTPLister(baseURL, apiKey string, client *http.Client) Lister {
	return func(ctx context.Context, user, filter, token string) (int, string, error) {
		q := url.Values{"pageSize": {strconv.Itoa(PageSize)}}
		if filter != "" {
			q.Set("filter", filter)
		}
		if token != "" {
			q.Set("pageToken", token)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/v1/users/"+user+"/messages?"+q.Encode(), nil)
		if err != nil {
			return 0, "", err
		}
		req.Header.Set("Authorization", "Bearer "+apiKey)
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return 0, "", err
		}
		if resp.StatusCode != http.StatusOK {
			return 0, "", fmt.Errorf("GET messages: %s: %.200s", resp.Status, body)
		}
		var out struct {
			Messages      []json.RawMessage `json:"messages"`
			NextPageToken string            `json:"nextPageToken"`
		}
		if err := json.Unmarshal(body, &out); err != nil {
			return 0, "", err
		}
		return len(out.Messages), out.NextPageToken, nil
	}
}

// Sample is the latencies of one kind of query.
type Sample map[string][]time.Duration

// All returns every latency of s.
func (s Sample) All() []time.Duration {
	var all []time.Duration
	for _, d := range s {
		all = append(all, d...)
	}
	return all
}

// Measure runs qs through list one after another and times each (a later
// page's earlier pages are listed first, untimed). A query that lists
// nothing is an error: the fixture answers every query of the mix.
func Measure(ctx context.Context, list Lister, qs []Query) (Sample, error) {
	s := Sample{}
	for _, q := range qs {
		token := ""
		for range q.Page - 1 {
			_, next, err := list(ctx, q.User, q.Filter, token)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", q.Kind, err)
			}
			token = next
		}
		start := time.Now()
		n, _, err := list(ctx, q.User, q.Filter, token)
		d := time.Since(start)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", q.Kind, err)
		}
		if n == 0 {
			return nil, fmt.Errorf("%s of %s (%s, page %d) listed nothing", q.Kind, q.User, q.Filter, q.Page)
		}
		s[q.Kind] = append(s[q.Kind], d)
	}
	return s, nil
}

// Percentile returns the p-th percentile (0 < p ≤ 100) of ds, nearest rank.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(p/100*float64(len(s)) + 0.999999)
	return s[min(max(rank, 1), len(s))-1]
}
