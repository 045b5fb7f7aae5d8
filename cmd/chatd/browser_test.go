package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The browser tests drive the chat page in a real headless Chromium, from
// Debian's chromium package (.ci/services installs it; nothing is
// downloaded). They wait on conditions of the page's DOM, each with a
// deadline, and never sleep for a fixed time.

// pageWait bounds each wait on the page; a healthy run needs well under a
// second for any of them.
const pageWait = 20 * time.Second

// chromiumPath finds the browser: $PARLEY_TEST_CHROMIUM, else chromium on
// PATH. Without one the test is skipped with a visible SKIP line, except in
// CI, where .ci/services must have installed it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PARLEY_TEST_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no Chromium on PATH: .ci/services installs Debian's chromium package (apt-get install chromium)")
	}
	t.Skip("SKIP: no Chromium on PATH or in PARLEY_TEST_CHROMIUM; `apt-get install chromium` (make services does) to run the browser tests")
	return ""
}

// newBrowser starts one headless Chromium with a fresh profile, for the
// whole test; each tab gets its own browser context (newTab).
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), // CI runs as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 800),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancel := chromedp.NewContext(actx)
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		cancel()
		cancelAlloc()
		t.Fatalf("start Chromium: %v", err)
	}
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return bctx
}

// tab is one browser tab and what it saw.
type tab struct {
	t   *testing.T
	ctx context.Context
	ws  *wsLog

	mu      sync.Mutex
	errs    []string // uncaught exceptions and dialogs: none is allowed
	dialogs int
}

// newTab opens a tab in a browser context of its own (its own
// localStorage), or, with a sibling, in the sibling's.
func newTab(t *testing.T, browser context.Context, sibling *tab, acceptLanguage string) *tab {
	t.Helper()
	var ctx context.Context
	var cancel context.CancelFunc
	if sibling == nil {
		ctx, cancel = chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	} else {
		ctx, cancel = chromedp.NewContext(sibling.ctx)
	}
	t.Cleanup(cancel)
	tb := &tab{t: t, ctx: ctx, ws: newWSLog()}
	if err := chromedp.Do(ctx, enableNetwork(acceptLanguage)); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	if err := chromedp.Listen(ctx, tb.listen); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		for _, e := range tb.errs {
			t.Errorf("page: %s", e)
		}
	})
	return tb
}

func enableNetwork(acceptLanguage string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		if acceptLanguage != "" {
			ua, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.userAgent`))
			if err != nil {
				return err
			}
			_, err = cdp.Call(ctx, t, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: ua, AcceptLanguage: acceptLanguage})
			return err
		}
		return nil
	})
}

func (tb *tab) listen(ev any) {
	switch e := ev.(type) {
	case *runtime.EventExceptionThrown:
		tb.mu.Lock()
		tb.errs = append(tb.errs, "uncaught: "+exceptionText(e.ExceptionDetails))
		tb.mu.Unlock()
	case *page.EventJavascriptDialogOpening:
		tb.mu.Lock()
		tb.dialogs++
		tb.errs = append(tb.errs, "a dialog opened: "+e.Message)
		tb.mu.Unlock()
	default:
		tb.ws.record(ev)
	}
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return "?"
	}
	if d.Exception != nil && d.Exception.Description != "" {
		return d.Exception.Description
	}
	return d.Text
}

// do runs actions in the tab, failing the test on error.
func (tb *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, pageWait)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %v\n%s", what, err, tb.state())
	}
}

// eval evaluates a JavaScript expression in the page, awaiting a promise.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, pageWait)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("evaluate %s: %v\n%s", expr, err, tb.state())
	}
	return v
}

// waitFor waits until the JavaScript expression is truthy.
func (tb *tab) waitFor(what, expr string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, pageWait+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(pageWait)))
	if err != nil {
		tb.t.Fatalf("waiting for %s (%s): %v\n%s", what, expr, err, tb.state())
	}
}

// state describes the page for a failure message.
func (tb *tab) state() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({
		url: location.href, conn: document.getElementById("conn")?.dataset.state,
		signin: !document.getElementById("signin")?.hidden, notice: document.getElementById("notice")?.textContent,
		messages: [...document.querySelectorAll("#messages > li")].map(li => li.dataset.status + ": " + li.querySelector(".body")?.textContent)})`))
	if err != nil {
		s = "(page state unavailable: " + err.Error() + ")"
	}
	return "page: " + s + "\nsockets:\n" + tb.ws.String()
}

// domMessage is a message as the page shows it.
type domMessage struct {
	ID      string   `json:"id"`
	Role    string   `json:"role"`
	Status  string   `json:"status"`
	Text    string   `json:"text"`
	Sources []string `json:"sources"`
}

func (tb *tab) messages() []domMessage {
	tb.t.Helper()
	return eval[[]domMessage](tb, `[...document.querySelectorAll("#messages > li")].map(li => ({
		id: li.dataset.id, role: li.classList.contains("user") ? "user" : "assistant", status: li.dataset.status,
		text: li.querySelector(".body").textContent, sources: [...li.querySelectorAll(".source .doc")].map(e => e.title)}))`)
}

// wsLog records the WebSocket traffic of a tab, from the DevTools
// protocol's network events: what the page really sent and received.
type wsLog struct {
	mu      sync.Mutex
	sockets []*wsRecord
	byID    map[network.RequestID]*wsRecord
}

type wsRecord struct {
	url      string
	received []map[string]any
	sent     []map[string]any
	closed   bool
}

func newWSLog() *wsLog { return &wsLog{byID: map[network.RequestID]*wsRecord{}} }

func (l *wsLog) record(ev any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	frame := func(id network.RequestID, f *network.WebSocketFrame, sent bool) {
		r := l.byID[id]
		if r == nil || f == nil || f.Opcode != 1 {
			return
		}
		var m map[string]any
		if json.Unmarshal(f.PayloadData, &m) != nil {
			return
		}
		if sent {
			r.sent = append(r.sent, m)
		} else {
			r.received = append(r.received, m)
		}
	}
	switch e := ev.(type) {
	case *network.EventWebSocketCreated:
		r := &wsRecord{url: e.URL}
		l.byID[e.RequestID] = r
		l.sockets = append(l.sockets, r)
	case *network.EventWebSocketFrameReceived:
		frame(e.RequestID, e.Response, false)
	case *network.EventWebSocketFrameSent:
		frame(e.RequestID, e.Response, true)
	case *network.EventWebSocketClosed:
		if r := l.byID[e.RequestID]; r != nil {
			r.closed = true
		}
	}
}

// snapshot copies the sockets seen so far.
func (l *wsLog) snapshot() []wsRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]wsRecord, len(l.sockets))
	for i, r := range l.sockets {
		out[i] = wsRecord{url: r.url, received: append([]map[string]any(nil), r.received...), sent: append([]map[string]any(nil), r.sent...), closed: r.closed}
	}
	return out
}

func (l *wsLog) String() string {
	var b strings.Builder
	for i, r := range l.snapshot() {
		fmt.Fprintf(&b, "  socket %d %s closed=%v, %d received, %d sent\n", i, redactTicket(r.url), r.closed, len(r.received), len(r.sent))
	}
	return b.String()
}

var ticketRE = regexp.MustCompile(`ticket=[^&]*`)

func redactTicket(u string) string { return ticketRE.ReplaceAllString(u, "ticket=…") }

// eventFrames returns the frames of r that carry a version, in order.
func (r wsRecord) eventFrames() []map[string]any {
	var out []map[string]any
	for _, f := range r.received {
		if _, ok := f["version"]; ok && f["type"] != "history" {
			out = append(out, f)
		}
	}
	return out
}

// history returns r's history frame, if it got one.
func (r wsRecord) history() map[string]any {
	for _, f := range r.received {
		if f["type"] == "history" {
			return f
		}
	}
	return nil
}

// checkNoJWTInURLs fails when a socket URL carries anything but a ticket.
func checkNoJWTInURLs(t *testing.T, l *wsLog) {
	t.Helper()
	for _, r := range l.snapshot() {
		if !strings.Contains(r.url, "ticket=") || strings.Contains(r.url, "token=") || strings.Contains(r.url, "eyJ") {
			t.Errorf("socket URL %s: want a ?ticket= and never a JWT", redactTicket(r.url))
		}
	}
}
