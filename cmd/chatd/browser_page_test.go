package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/parleychat/parley/adapters/jwtauth"
)

// What the browser tests do on the page, and check of what it got.

// roomTab opens the page at base in a new tab, signs in as user with the
// development login and creates a room, open and live.
func roomTab(t *testing.T, browser context.Context, base, user, title string) (*tab, int64) {
	t.Helper()
	tb := newTab(t, browser, nil, "")
	open(tb, base)
	devLogin(tb, user)
	return tb, createRoom(tb, title)
}

func open(tb *tab, url string) {
	tb.t.Helper()
	tb.do("open "+url, chromedp.Navigate(url))
	tb.waitFor("the page", `!document.getElementById("signin").hidden || !document.getElementById("app").hidden`)
}

func devLogin(tb *tab, user string) {
	tb.t.Helper()
	tb.waitFor("the development login", `!document.getElementById("dev-form").hidden`)
	tb.do("dev login", chromedp.SetValue(chromedp.CSS("#dev-user"), user), chromedp.Click(chromedp.CSS("#dev-login")))
	tb.waitFor("the rooms", `!document.getElementById("app").hidden`)
}

var roomHashRE = regexp.MustCompile(`#room=(\d+)$`)

// createRoom creates a room and waits until it is open and connected.
func createRoom(tb *tab, title string) int64 {
	tb.t.Helper()
	before := eval[string](tb, `location.hash`) // another room may be open
	tb.do("create a room", chromedp.SetValue(chromedp.CSS("#new-room-title"), title), chromedp.Click(chromedp.CSS("#new-room-create")))
	tb.waitFor("the new room, live", fmt.Sprintf(`/#room=\d+$/.test(location.hash) && location.hash !== %q &&
		document.getElementById("conn").dataset.state === "live" && document.getElementById("room-title").textContent === %q`, before, title))
	m := roomHashRE.FindStringSubmatch(eval[string](tb, `location.href`))
	id, _ := strconv.ParseInt(m[1], 10, 64)
	return id
}

// ask types a question and presses Enter.
func ask(tb *tab, text string) {
	tb.t.Helper()
	tb.do("ask "+text, chromedp.SetValue(chromedp.CSS("#input"), text), chromedp.Focus(chromedp.CSS("#input")), pressEnter(0))
}

// shift is the Shift modifier of a key event.
const shift = 8

// pressEnter presses Enter as a keyboard does: one keyDown that carries
// its text (so a handler that prevents the default stops the new line,
// which chromedp.KeyEvent's separate char event would not), then keyUp.
func pressEnter(modifiers int64) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		down := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyDown, Key: "Enter", Code: "Enter",
			WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13, Text: "\r", UnmodifiedText: "\r", Modifiers: modifiers}
		if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, down); err != nil {
			return err
		}
		up := down
		up.Type, up.Text, up.UnmodifiedText = input.DispatchKeyEventTypeKeyUp, "", ""
		_, err := cdp.Call(ctx, t, input.DispatchKeyEvent, up)
		return err
	})
}

// waitAnswer waits until the last message is an answer with status.
func waitAnswer(tb *tab, status string) {
	tb.t.Helper()
	tb.waitFor("an answer "+status, fmt.Sprintf(`document.querySelector("#messages > li:last-child.assistant")?.dataset.status === %q`, status))
}

// waitText waits until the last answer's text contains s.
func waitText(tb *tab, s string) {
	tb.t.Helper()
	tb.waitFor("the answer to show "+s, fmt.Sprintf(`(document.querySelector("#messages > li:last-child.assistant .body")?.textContent || "").includes(%q)`, s))
}

// waitUntil polls cond until it holds, for at most pageWait.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(pageWait)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: still not there after %v", what, pageWait)
		}
		<-tick.C
	}
}

// waitFrame waits until the tab's last socket has received a frame of
// type typ: the DevTools events that record frames may trail the page.
func waitFrame(t *testing.T, tb *tab, typ string) {
	t.Helper()
	waitUntil(t, "a "+typ+" frame", func() bool {
		socks := tb.ws.snapshot()
		if len(socks) == 0 {
			return false
		}
		for _, f := range socks[len(socks)-1].received {
			if f["type"] == typ {
				return true
			}
		}
		return false
	})
}

// watchStatuses records every status the page gives its answers.
func watchStatuses(tb *tab) {
	tb.t.Helper()
	eval[bool](tb, `(() => { window.statusesSeen = new Set();
		new MutationObserver(() => document.querySelectorAll("#messages > li.assistant").forEach(li => window.statusesSeen.add(li.dataset.status)))
		  .observe(document.getElementById("messages"), {subtree: true, childList: true, attributes: true, attributeFilter: ["data-status"]});
		return true; })()`)
}

// sentMessages counts the message frames the tab has sent.
func sentMessages(tb *tab) int {
	n := 0
	for _, s := range tb.ws.snapshot() {
		for _, f := range s.sent {
			if f["type"] == "message" {
				n++
			}
		}
	}
	return n
}

// checkAnswerText checks the page shows the held answer exactly once, in
// full.
func checkAnswerText(t *testing.T, tb *tab) {
	t.Helper()
	ms := tb.messages()
	if len(ms) != 2 || ms[1].Text != heldAnswer() {
		t.Errorf("page shows %+v; want the question and the answer %q, no part missing or twice", ms, heldAnswer())
	}
}

// checkStream checks what the sockets delivered of the last answer: the
// history's partial text (if a socket started with one) and the chunks
// after it, across reconnects, add up to the final text, with chunk seqs
// consecutive and no version twice.
func checkStream(t *testing.T, socks []wsRecord) {
	t.Helper()
	var text strings.Builder
	seen := map[float64]bool{}
	nextSeq := -1.0
	for i, s := range socks {
		if h := s.history(); h != nil && i == 0 {
			if msgs := h["messages"].([]any); len(msgs) > 0 {
				if m := msgs[len(msgs)-1].(map[string]any); m["role"] == "assistant" {
					text.WriteString(m["message"].(string))
				}
			}
		}
		for _, f := range s.eventFrames() {
			v := f["version"].(float64)
			if seen[v] {
				t.Errorf("version %v delivered twice", v)
			}
			seen[v] = true
			switch f["type"] {
			case "chunk":
				if seq := f["seq"].(float64); nextSeq >= 0 && seq != nextSeq {
					t.Errorf("chunk seq %v, want %v: a gap or a duplicate", seq, nextSeq)
				} else {
					nextSeq = seq + f["deltas"].(float64) // a chunk may carry several deltas
				}
				text.WriteString(f["message"].(string))
			case "answer":
				if f["message"] != text.String() {
					t.Errorf("the chunks add up to %q, the answer is %q", text.String(), f["message"])
				}
			}
		}
	}
}

func screenshot(tb *tab, path string) {
	tb.t.Helper()
	tb.do("open the sources", chromedp.Click(chromedp.CSS(`#messages > li.assistant:last-child details.sources summary`)))
	ctx := tb.ctx
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Logf("wrote the screenshot to %s", path)
}

func mustDevToken(t *testing.T, user string) string {
	t.Helper()
	tok, _, err := jwtauth.DevIssuer{}.DevToken(t.Context(), user)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}
