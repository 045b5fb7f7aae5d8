package main

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/adapters/langchain"
)

// The model server: an OpenAI-compatible chat completions endpoint
// (POST /v1/chat/completions with "stream": true, answered as server-sent
// events the way langchaingo's openai client reads them), which chatd
// reaches over HTTP with PARLEY_LLM_PROVIDER=openai, as it would reach
// vLLM or llama.cpp. Every answer follows a plan the client registered
// under a tag it put in its question: the tokens, their pace and the time
// to the first. The server stamps each token's emit time into the plan
// just before writing it, so the client, in the same process, measures
// every token's latency from emit to receipt whatever chatd does with the
// text on the way (coalescing included).

// answerPlan is what the model answers to one question, and when it
// emitted each part of it. Times count nanoseconds from modelServer.epoch.
type answerPlan struct {
	tag    string
	tokens []string
	text   string        // the tokens joined
	ends   []int         // byte offset in text where token i ends
	period time.Duration // between two tokens; 0: all at once
	ttft   time.Duration // from the request to the first token

	requested atomic.Int64   // when the model's request arrived; 0 until then
	emitted   []atomic.Int64 // when token i was written; 0 until then
}

// modelServer serves the plans.
type modelServer struct {
	epoch time.Time
	url   string // the base URL chatd's PARLEY_LLM_URL gets (…/v1)
	srv   *http.Server
	done  chan struct{}

	mu    sync.Mutex
	plans map[string]*answerPlan

	answers, summaries, rewrites, unknown atomic.Int64
}

// rewritePrompt starts the system text of chatd's query rewrite requests.
var rewritePrompt, _, _ = strings.Cut(langchain.RewriteInstructions(nil), ".")

// rewriteReply answers a rewrite request: one search query per language.
const rewriteReply = "en: youth housing allowance rent support eligibility amount\nko: 청년 월세 지원 자격 금액\n"

// questionTag finds the tag a bench question carries: "(#tag)".
var questionTag = regexp.MustCompile(`\(#([a-z0-9-]+)\)\s*$`)

// startModelServer serves on a fresh loopback port until close.
func startModelServer(epoch time.Time) (*modelServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	m := &modelServer{epoch: epoch, plans: map[string]*answerPlan{}, done: make(chan struct{}), url: "http://" + ln.Addr().String() + "/v1"}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", m.complete)
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { // owned: close waits for done
		defer close(m.done)
		_ = m.srv.Serve(ln)
	}()
	return m, nil
}

func (m *modelServer) close() {
	_ = m.srv.Close()
	<-m.done
}

func (m *modelServer) now() int64 { return int64(time.Since(m.epoch)) }

// plan registers the answer to the question tagged tag: n tokens cut from
// the bench text (3 to 6 characters each, the same for the same tag), the
// first ttft after the request, then one per period.
func (m *modelServer) plan(tag string, n int, period, ttft time.Duration) *answerPlan {
	p := &answerPlan{tag: tag, tokens: benchTokens(tag, n), period: period, ttft: ttft, emitted: make([]atomic.Int64, n)}
	off := 0
	p.ends = make([]int, n)
	for i, t := range p.tokens {
		off += len(t)
		p.ends[i] = off
	}
	p.text = strings.Join(p.tokens, "")
	m.mu.Lock()
	m.plans[tag] = p
	m.mu.Unlock()
	return p
}

// forget drops a plan the client has finished with.
func (m *modelServer) forget(tag string) {
	m.mu.Lock()
	delete(m.plans, tag)
	m.mu.Unlock()
}

// tokenText is what answers are cut from.
const tokenText = "The youth housing allowance pays up to 200,000 won a month towards rent for up to twelve months. " +
	"You can apply if you are between 19 and 34, live apart from your parents, rent a home with a deposit of at most " +
	"50 million won and a monthly rent of at most 600,000 won, and your own household income is at most 60% of the " +
	"median income while your parents' household income is at most 100% of it. Apply online at Bokjiro or at the " +
	"community service centre of your neighbourhood with your lease, proof of income and a bank account in your name. "

// benchTokens cuts n tokens of 3 to 6 characters from tokenText, starting
// at a place and with lengths drawn from tag: a readable answer, the same
// for the same tag, in pieces the size of a model's tokens.
func benchTokens(tag string, n int) []string {
	h := fnv.New64a()
	h.Write([]byte(tag))
	rng := rand.New(rand.NewPCG(h.Sum64(), 15))
	pos := rng.IntN(len(tokenText))
	out := make([]string, n)
	for i := range out {
		k := 3 + rng.IntN(4)
		var b strings.Builder
		for range k {
			b.WriteByte(tokenText[pos])
			pos = (pos + 1) % len(tokenText)
		}
		out[i] = b.String()
	}
	return out
}

// summaryTokens is the answer to a summary request (the memory worker's).
var summaryTokens = []string{"The user", " asked about", " the youth", " housing", " allowance."}

// chatRequest is the part of a chat completions request the server reads.
type chatRequest struct {
	Stream   bool `json:"stream"`
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
}

// complete answers one request as a stream of chunks: the registered plan
// of the tag in the last user message, paced; a summary request, or a
// question without a known tag, gets a short text at once, and a query
// rewrite request its queries.
func (m *modelServer) complete(w http.ResponseWriter, r *http.Request) {
	arrived := m.now()
	var req chatRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || !req.Stream || len(req.Messages) == 0 {
		http.Error(w, `{"error":{"message":"want a streaming chat completion request","type":"invalid_request_error"}}`, http.StatusBadRequest)
		return
	}
	last := req.Messages[len(req.Messages)-1].Content
	rewrite := req.Messages[0].Role == "system" && strings.HasPrefix(req.Messages[0].Content, rewritePrompt)
	var p *answerPlan
	if match := questionTag.FindStringSubmatch(last); match != nil && !rewrite && !strings.HasPrefix(last, "<summary>") {
		m.mu.Lock()
		p = m.plans[match[1]]
		m.mu.Unlock()
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	s := &sse{w: w, f: w.(http.Flusher)}
	s.send(`{"id":"bench","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`)
	switch {
	case rewrite:
		m.rewrites.Add(1)
		s.content(rewriteReply)
	case p == nil:
		if strings.HasPrefix(last, "<summary>") {
			m.summaries.Add(1)
		} else {
			m.unknown.Add(1)
		}
		for _, t := range summaryTokens {
			s.content(t)
		}
	default:
		m.answers.Add(1)
		p.requested.Store(arrived)
		start := m.epoch.Add(time.Duration(arrived))
		for i, t := range p.tokens {
			if p.period > 0 || p.ttft > 0 {
				due := start.Add(p.ttft + time.Duration(i)*p.period)
				if d := time.Until(due); d > 0 {
					timer := time.NewTimer(d)
					select {
					case <-timer.C:
					case <-r.Context().Done():
						timer.Stop()
						return
					}
				}
			}
			p.emitted[i].Store(m.now())
			if !s.content(t) {
				return
			}
		}
	}
	s.send(`{"id":"bench","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`)
	s.send("[DONE]")
}

// sse writes server-sent events, flushing each.
type sse struct {
	w   http.ResponseWriter
	f   http.Flusher
	buf []byte
	err error
}

func (s *sse) send(data string) bool {
	if s.err != nil {
		return false
	}
	s.buf = append(append(append(s.buf[:0], "data: "...), data...), "\n\n"...)
	if _, s.err = s.w.Write(s.buf); s.err == nil {
		s.f.Flush()
	}
	return s.err == nil
}

// content sends one delta.
func (s *sse) content(text string) bool {
	b, _ := json.Marshal(text) // a string always encodes
	return s.send(fmt.Sprintf(`{"id":"bench","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":%s},"finish_reason":null}]}`, b))
}
