package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The servers around the browser tests' chatd: a scripted model, and a
// proxy that can cut the network.

// fakeModel is an OpenAI-compatible chat completions server (langchaingo's
// openai client talks to it as to vLLM or OpenAI), scripted by markers in
// the question: [[hold:NAME]] streams ten parts, waits until release(NAME)
// (or the answer is cancelled), then ten more; [[script]] answers with
// HTML and Markdown; anything else gets a short answer.
type fakeModel struct {
	srv *httptest.Server

	mu        sync.Mutex
	gates     map[string]chan struct{}
	cancelled map[string]bool
}

var holdRE = regexp.MustCompile(`\[\[hold:(\w+)\]\]`)

// scriptAnswer is the model answer of [[script]], in chunks.
var scriptAnswer = []string{"Careful: <script>alert(1)</script> ", "and <img src=x onerror=alert(2)> ", "stay text; **bold** and `<b>code</b>` ", "are Markdown; [a link](javascript:alert(3)) is not."}

func newFakeModel(t *testing.T) *fakeModel {
	m := &fakeModel{gates: map[string]chan struct{}{}, cancelled: map[string]bool{}}
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(func() {
		m.mu.Lock()
		for _, g := range m.gates {
			select {
			case <-g:
			default:
				close(g)
			}
		}
		m.mu.Unlock()
		m.srv.Close()
	})
	return m
}

func (m *fakeModel) gate(name string) chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	g, ok := m.gates[name]
	if !ok {
		g = make(chan struct{})
		m.gates[name] = g
	}
	return g
}

// release lets the [[hold:name]] answer finish.
func (m *fakeModel) release(name string) { close(m.gate(name)) }

func (m *fakeModel) wasCancelled(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cancelled[name]
}

func (m *fakeModel) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req struct {
		Stream   bool `json:"stream"`
		Messages []struct {
			Content any `json:"content"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(body, &req); err != nil || r.URL.Path != "/v1/chat/completions" {
		http.Error(w, `{"error":{"message":"bad request"}}`, http.StatusBadRequest)
		return
	}
	last := ""
	if n := len(req.Messages); n > 0 {
		b, _ := json.Marshal(req.Messages[n-1].Content)
		last = string(b)
	}
	if !req.Stream { // the memory summariser
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"s","object":"chat.completion","created":1,"model":"fake","choices":[{"index":0,"message":{"role":"assistant","content":"A summary."},"finish_reason":"stop"}]}`)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	send := func(delta string) {
		d, _ := json.Marshal(delta)
		fmt.Fprintf(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"fake\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%s},\"finish_reason\":null}]}\n\n", d)
		w.(http.Flusher).Flush()
	}
	parts := func(from, to int) {
		for i := from; i < to; i++ {
			sep := " "
			if i == 19 {
				sep = ""
			}
			send(fmt.Sprintf("Part %02d.%s", i, sep))
		}
	}
	switch hold := holdRE.FindStringSubmatch(last); {
	case hold != nil:
		parts(0, 10)
		select {
		case <-m.gate(hold[1]):
		case <-r.Context().Done():
			m.mu.Lock()
			m.cancelled[hold[1]] = true
			m.mu.Unlock()
			return
		}
		parts(10, 20)
	case strings.Contains(last, "[[script]]"):
		for _, c := range scriptAnswer {
			send(c)
		}
	default:
		for i := range 5 {
			send("Hello " + strconv.Itoa(i) + ". ")
		}
	}
	fmt.Fprint(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"fake\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
}

// heldAnswer is the full text of a [[hold:...]] answer.
func heldAnswer() string {
	var b strings.Builder
	for i := range 20 {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "Part %02d.", i)
	}
	return b.String()
}

// cutProxy forwards TCP connections to a server and can cut them all at
// once: a network outage as the browser sees it.
type cutProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) base() string { return "http://" + p.ln.Addr().String() }

func (p *cutProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		p.wg.Go(func() { pipe(up, c) })
		p.wg.Go(func() { pipe(c, up) })
	}
}

// cut closes every connection through the proxy.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}
