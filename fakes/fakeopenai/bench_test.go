package fakeopenai_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"mailroom.dev/fakes/fakeopenai"
)

// BenchmarkChatCompletion is the fake's own cost for a classifier-sized
// request (about 700 prompt tokens, a new mail each time, a strict schema), without the network.
func BenchmarkChatCompletion(b *testing.B) {
	fake := fakeopenai.New(fakeopenai.Config{Keys: map[string]fakeopenai.Limits{"sk-a": {}}})
	mail := strings.Repeat("Hello team, the quarterly report is attached; please review the figures before Friday. ", 20)
	system := strings.Repeat("Categories: work, finance, newsletters. ", 40)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		// Every mail differs, as in a real run; the system prompt does not.
		body, _ := json.Marshal(withSchema(map[string]any{
			"model": "gpt-4o-mini", "max_completion_tokens": 100,
			"messages": []map[string]any{
				{"role": "system", "content": system},
				{"role": "user", "content": fmt.Sprintf("<mail>\nMessage %d\n%s\n</mail>", i, mail)},
			},
		}, classificationSchema()))
		req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer sk-a")
		w := httptest.NewRecorder()
		fake.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}
