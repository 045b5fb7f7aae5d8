package langchain_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tmc/langchaingo/llms"

	"github.com/parleychat/parley/adapters/langchain"
	"github.com/parleychat/parley/domain/chat"
)

const (
	testModel  = "test-model"
	testAPIKey = "sk-test-secret"
)

var testPrompt = chat.Prompt{
	System:   "Be brief.",
	History:  []chat.Turn{{Role: chat.RoleUser, Content: "earlier"}, {Role: chat.RoleAssistant, Content: "reply"}},
	Context:  []chat.Passage{{Document: "a.md", Text: "Alpha."}},
	Question: "Say hello.",
}

// chatRequest is the part of a chat request both protocols share.
type chatRequest struct {
	Model    string `json:"model"`
	Stream   bool   `json:"stream"`
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
}

// fakeServer speaks one provider's streaming protocol. Each request gets
// the next step of script (the last one repeats); requests counts them and
// checks every request's method, path, headers and body.
type fakeServer struct {
	t        *testing.T
	provider string
	script   []step
	requests atomic.Int32
	stop     chan struct{} // closed at cleanup to release hanging handlers
	want     []string      // the messages every request must carry, as "role: content"
	srv      *httptest.Server
}

// step is how the server answers one request.
type step struct {
	status int      // an error status answered with errBody; 0 streams chunks
	body   string   // the error body
	retry  string   // Retry-After header of an error status
	chunks []string // content deltas streamed in order
	// after the chunks: "" ends the stream properly; "abort" cuts the
	// connection; "error" sends an in-stream error (Ollama); "hang" waits
	// for the client to give up; "nodone" ends without the final message.
	then string
	// hangFirst waits for the client to give up before any response.
	hangFirst bool
}

func newFakeServer(t *testing.T, provider string, script ...step) *fakeServer {
	t.Helper()
	f := &fakeServer{t: t, provider: provider, script: script, stop: make(chan struct{})}
	roles := map[llms.ChatMessageType]string{llms.ChatMessageTypeSystem: "system", llms.ChatMessageTypeHuman: "user", llms.ChatMessageTypeAI: "assistant"}
	for _, m := range unpack(t, langchain.BuildMessages("", testPrompt)) {
		f.want = append(f.want, roles[m.Role]+": "+m.Text)
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	t.Cleanup(func() { close(f.stop) }) // runs first: releases handlers so Close can return
	return f
}

// config returns a Config for the fake server with fast retries.
func (f *fakeServer) config() langchain.Config {
	cfg := langchain.Config{Provider: f.provider, BaseURL: f.srv.URL, Model: testModel, RetryBackoff: time.Millisecond}
	if f.provider == langchain.ProviderOpenAI {
		cfg.BaseURL += "/v1"
		cfg.APIKey = testAPIKey
	}
	return cfg
}

func (f *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	n := int(f.requests.Add(1))
	f.check(r)
	s := f.script[min(n, len(f.script))-1]
	if s.hangFirst {
		f.hang(r)
		return
	}
	if s.status != 0 {
		if s.retry != "" {
			w.Header().Set("Retry-After", s.retry)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(s.status)
		fmt.Fprint(w, s.body)
		return
	}
	if f.provider == langchain.ProviderOllama {
		w.Header().Set("Content-Type", "application/x-ndjson")
	} else {
		w.Header().Set("Content-Type", "text/event-stream")
	}
	if f.provider == langchain.ProviderOpenAI {
		f.send(w, `{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`)
	}
	for _, c := range s.chunks {
		f.send(w, f.chunk(c))
	}
	switch s.then {
	case "abort":
		panic(http.ErrAbortHandler) // the client sees the connection cut mid-body
	case "error":
		if f.provider == langchain.ProviderOllama {
			f.send(w, `{"error":"model runner crashed"}`)
		} else {
			f.send(w, `{"error":{"message":"model runner crashed","type":"server_error"}}`)
		}
	case "hang":
		f.hang(r)
	case "nodone":
	default:
		if f.provider == langchain.ProviderOllama {
			f.send(w, `{"model":"test-model","created_at":"2026-01-01T00:00:00Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","eval_count":4}`)
		} else {
			f.send(w, `{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`)
			f.send(w, `{"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}`)
			f.send(w, "[DONE]")
		}
	}
}

// chunk is one content delta in the provider's format.
func (f *fakeServer) chunk(content string) string {
	c, err := json.Marshal(content)
	if err != nil {
		panic(err)
	}
	if f.provider == langchain.ProviderOllama {
		return `{"model":"test-model","created_at":"2026-01-01T00:00:00Z","message":{"role":"assistant","content":` + string(c) + `},"done":false}`
	}
	return `{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":` + string(c) + `},"finish_reason":null}]}`
}

// send writes one NDJSON line or SSE event and flushes it.
func (f *fakeServer) send(w http.ResponseWriter, data string) {
	if f.provider == langchain.ProviderOllama {
		fmt.Fprintf(w, "%s\n", data)
	} else {
		fmt.Fprintf(w, "data: %s\n\n", data)
	}
	w.(http.Flusher).Flush()
}

func (f *fakeServer) hang(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-f.stop:
	}
}

// check verifies what langchaingo sends: the endpoint, the bearer token for
// OpenAI, a streaming request for the model, and BuildMessages' messages.
func (f *fakeServer) check(r *http.Request) {
	wantPath := "/api/chat"
	if f.provider == langchain.ProviderOpenAI {
		wantPath = "/v1/chat/completions"
		if got, want := r.Header.Get("Authorization"), "Bearer "+testAPIKey; got != want {
			f.t.Errorf("Authorization = %q, want %q", got, want)
		}
	}
	if r.Method != http.MethodPost || r.URL.Path != wantPath {
		f.t.Errorf("request %s %s, want POST %s", r.Method, r.URL.Path, wantPath)
	}
	var req chatRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		f.t.Errorf("decoding the request body: %v", err)
		return
	}
	if req.Model != testModel || !req.Stream {
		f.t.Errorf("request model %q stream %v, want %q streaming", req.Model, req.Stream, testModel)
	}
	var got []string
	for _, m := range req.Messages {
		got = append(got, m.Role+": "+m.Content)
	}
	if diff := cmp.Diff(got, f.want); diff != "" {
		f.t.Errorf("request messages mismatch (-got +want):\n%s", diff)
	}
}

func newTestGenerator(t *testing.T, cfg langchain.Config) *langchain.Generator {
	t.Helper()
	g, err := langchain.NewGenerator(cfg)
	if err != nil {
		t.Fatalf("NewGenerator: %v", err)
	}
	return g
}

// generate runs Generate with t's context and collects the deltas.
func generate(t *testing.T, ctx context.Context, g *langchain.Generator) ([]string, error) {
	t.Helper()
	var deltas []string
	err := g.Generate(ctx, testPrompt, func(d string) error {
		deltas = append(deltas, d)
		return nil
	})
	return deltas, err
}

var providers = []string{langchain.ProviderOllama, langchain.ProviderOpenAI}

// errorBody is an error response body in the provider's format.
func errorBody(provider, msg string) string {
	if provider == langchain.ProviderOllama {
		return `{"error":"` + msg + `"}`
	}
	return `{"error":{"message":"` + msg + `","type":"server_error"}}`
}

func TestGenerateStreamsDeltasInOrder(t *testing.T) {
	for _, provider := range providers {
		t.Run(provider, func(t *testing.T) {
			f := newFakeServer(t, provider, step{chunks: []string{"Hel", "lo, ", "wor", "ld 👋"}})
			g := newTestGenerator(t, f.config())
			deltas, err := generate(t, t.Context(), g)
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			if diff := cmp.Diff(deltas, []string{"Hel", "lo, ", "wor", "ld 👋"}); diff != "" {
				t.Errorf("deltas mismatch (-got +want):\n%s", diff)
			}
			if got, want := g.Name(), provider+"/"+testModel; got != want {
				t.Errorf("Name() = %q, want %q", got, want)
			}
		})
	}
}

func TestGenerateRetriesTransientFailuresBeforeTheFirstDelta(t *testing.T) {
	for _, provider := range providers {
		ok := step{chunks: []string{"Hel", "lo"}}
		tests := []struct {
			name   string
			script []step
		}{
			{"503 twice", []step{
				{status: 503, body: errorBody(provider, "server busy")},
				{status: 503, body: errorBody(provider, "server busy")},
				ok,
			}},
			{"503 with an empty body", []step{{status: 503}, ok}},
			{"429 then 500", []step{{status: 429, body: errorBody(provider, "slow down")}, {status: 500, body: "oops"}, ok}},
			{"connection cut before any delta", []step{{then: "abort"}, ok}},
		}
		for _, tt := range tests {
			t.Run(provider+"/"+tt.name, func(t *testing.T) {
				f := newFakeServer(t, provider, tt.script...)
				deltas, err := generate(t, t.Context(), newTestGenerator(t, f.config()))
				if err != nil {
					t.Fatalf("Generate: %v", err)
				}
				if diff := cmp.Diff(deltas, []string{"Hel", "lo"}); diff != "" {
					t.Errorf("deltas mismatch (-got +want):\n%s", diff)
				}
				if got, want := int(f.requests.Load()), len(tt.script); got != want {
					t.Errorf("server got %d requests, want %d", got, want)
				}
			})
		}
	}
}

func TestGenerateGivesUpAfterMaxRetries(t *testing.T) {
	for _, provider := range providers {
		t.Run(provider, func(t *testing.T) {
			f := newFakeServer(t, provider, step{status: 503, body: errorBody(provider, "server busy")})
			cfg := f.config()
			cfg.MaxRetries = 1
			_, err := generate(t, t.Context(), newTestGenerator(t, cfg))
			var se *langchain.StatusError
			if !errors.As(err, &se) || se.StatusCode != 503 {
				t.Fatalf("Generate = %v, want a StatusError 503", err)
			}
			want := "langchain " + provider + "/" + testModel + ": generate: attempt 2 of 2: server answered 503 Service Unavailable"
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Generate error = %q, want it to start %q", err, want)
			}
			if got := f.requests.Load(); got != 2 {
				t.Errorf("server got %d requests, want 2", got)
			}
		})
	}
}

func TestGenerateHonoursRetryAfter(t *testing.T) {
	f := newFakeServer(t, langchain.ProviderOllama, step{status: 429, retry: "1"}, step{chunks: []string{"ok"}})
	start := time.Now()
	if _, err := generate(t, t.Context(), newTestGenerator(t, f.config())); err != nil {
		t.Fatalf("Generate: %v", err)
	}
	if elapsed := time.Since(start); elapsed < time.Second {
		t.Errorf("retried after %v, want at least the server's Retry-After of 1s", elapsed)
	}
}

func TestGenerateDoesNotRetryPermanentFailures(t *testing.T) {
	for _, provider := range providers {
		for _, status := range []int{400, 401, 404} {
			t.Run(fmt.Sprintf("%s/%d", provider, status), func(t *testing.T) {
				f := newFakeServer(t, provider, step{status: status, body: errorBody(provider, "no")})
				_, err := generate(t, t.Context(), newTestGenerator(t, f.config()))
				var se *langchain.StatusError
				if !errors.As(err, &se) || se.StatusCode != status {
					t.Fatalf("Generate = %v, want a StatusError %d", err, status)
				}
				if got := f.requests.Load(); got != 1 {
					t.Errorf("server got %d requests, want 1", got)
				}
			})
		}
	}
}

func TestGenerateFailureAfterTheFirstDeltaIsFinal(t *testing.T) {
	tests := []struct {
		provider string
		then     string
	}{
		{langchain.ProviderOllama, "error"},
		{langchain.ProviderOllama, "abort"},
		{langchain.ProviderOllama, "nodone"},
		{langchain.ProviderOpenAI, "abort"},
		{langchain.ProviderOpenAI, "error"},
		{langchain.ProviderOpenAI, "nodone"},
	}
	for _, tt := range tests {
		t.Run(tt.provider+"/"+tt.then, func(t *testing.T) {
			f := newFakeServer(t, tt.provider, step{chunks: []string{"Hel"}, then: tt.then}, step{chunks: []string{"Hello"}})
			cfg := f.config()
			cfg.MaxRetries = 3
			deltas, err := generate(t, t.Context(), newTestGenerator(t, cfg))
			if err == nil {
				t.Fatal("Generate = nil, want an error")
			}
			if !strings.HasPrefix(err.Error(), "langchain "+tt.provider+"/"+testModel+": generate: ") {
				t.Errorf("Generate error = %q, want it wrapped with the provider and model", err)
			}
			if diff := cmp.Diff(deltas, []string{"Hel"}); diff != "" {
				t.Errorf("deltas mismatch (-got +want):\n%s", diff)
			}
			if got := f.requests.Load(); got != 1 {
				t.Errorf("server got %d requests, want 1: nothing may be retried after a delta went out", got)
			}
		})
	}
}

func TestGenerateTimeout(t *testing.T) {
	for _, provider := range providers {
		for _, s := range []step{{hangFirst: true}, {chunks: []string{"Hel"}, then: "hang"}} {
			t.Run(fmt.Sprintf("%s/after %d deltas", provider, len(s.chunks)), func(t *testing.T) {
				f := newFakeServer(t, provider, s)
				cfg := f.config()
				cfg.Timeout = 200 * time.Millisecond
				start := time.Now()
				deltas, err := generate(t, t.Context(), newTestGenerator(t, cfg))
				if elapsed := time.Since(start); elapsed > 5*time.Second {
					t.Errorf("Generate returned after %v, want about the 200ms timeout", elapsed)
				}
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Generate = %v, want an error wrapping context.DeadlineExceeded", err)
				}
				if diff := cmp.Diff(deltas, s.chunks); diff != "" {
					t.Errorf("deltas mismatch (-got +want):\n%s", diff)
				}
				if got := f.requests.Load(); got != 1 {
					t.Errorf("server got %d requests, want 1", got)
				}
			})
		}
	}
}

func TestGenerateReturnsTheCallersContextError(t *testing.T) {
	for _, provider := range providers {
		t.Run(provider, func(t *testing.T) {
			f := newFakeServer(t, provider, step{chunks: []string{"Hel"}, then: "hang"})
			ctx, cancel := context.WithCancel(t.Context())
			g := newTestGenerator(t, f.config())
			var deltas []string
			err := g.Generate(ctx, testPrompt, func(d string) error {
				deltas = append(deltas, d)
				cancel() // the reader went away after the first delta
				return nil
			})
			if err != context.Canceled {
				t.Errorf("Generate = %v, want context.Canceled as is", err)
			}
			if diff := cmp.Diff(deltas, []string{"Hel"}); diff != "" {
				t.Errorf("deltas mismatch (-got +want):\n%s", diff)
			}
		})
	}
}

func TestGenerateStopsWhenEmitFails(t *testing.T) {
	for _, provider := range providers {
		t.Run(provider, func(t *testing.T) {
			f := newFakeServer(t, provider, step{chunks: []string{"a", "b", "c"}})
			errStop := errors.New("room closed")
			calls := 0
			err := newTestGenerator(t, f.config()).Generate(t.Context(), testPrompt, func(string) error {
				calls++
				return errStop
			})
			if err != errStop {
				t.Errorf("Generate = %v, want emit's error as is", err)
			}
			if calls != 1 || f.requests.Load() != 1 {
				t.Errorf("emit called %d times over %d requests, want 1 and 1", calls, f.requests.Load())
			}
		})
	}
}

func TestGenerateRetriesRefusedConnections(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	for _, provider := range providers {
		t.Run(provider, func(t *testing.T) {
			cfg := langchain.Config{Provider: provider, BaseURL: "http://" + addr, Model: testModel, APIKey: testAPIKey, RetryBackoff: time.Millisecond}
			_, err := generate(t, t.Context(), newTestGenerator(t, cfg))
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("Generate = %v, want an error wrapping ECONNREFUSED", err)
			}
			if !strings.Contains(err.Error(), "attempt 3 of 3") {
				t.Errorf("Generate error = %q, want it to say 3 attempts were made", err)
			}
		})
	}
}
