package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parleychat/parley/adapters/jwtauth"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
)

// TestBrowser runs the chat page in headless Chromium against two chatds
// on the public development secret (so the development login exists): one
// as `make run` starts it, with the offline generator and a document to
// cite, and one whose model is a scripted OpenAI-compatible server, so a
// test can hold an answer half-way and act meanwhile.
func TestBrowser(t *testing.T) {
	browser := newBrowser(t)

	// Pages of two other sites, for CORS: one allowed, one not.
	otherSite := func() *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<!doctype html><title>another site</title><p>another site")
		}))
		t.Cleanup(s.Close)
		return s
	}
	allowedSite, foreignSite := otherSite(), otherSite()

	db := pgtest.NewDatabase(t)
	ingestDoc(t, db, "housing/youth-rent.md", "# Youth monthly rent support\n\nYoung people living alone can receive up to 200,000 won a month for twelve months as youth monthly rent support. Apply online at the welfare portal with a lease contract and proof of income.")
	offline := startChatd(t, db, map[string]string{
		"PARLEY_JWT_SECRET":          "", // the development secret: the page offers the development login
		"PARLEY_OFFLINE_TOKEN_DELAY": "15ms",
		"PARLEY_ALLOWED_ORIGINS":     allowedSite.URL,
	})
	fake := newFakeModel(t)
	model := startChatd(t, pgtest.NewDatabase(t), map[string]string{
		"PARLEY_JWT_SECRET":         "",
		"PARLEY_LLM_PROVIDER":       "openai",
		"PARLEY_LLM_URL":            fake.srv.URL + "/v1",
		"PARLEY_LLM_MODEL":          "fake",
		"PARLEY_LLM_API_KEY":        "not-checked",
		"PARLEY_MEMORY_TOKEN_LIMIT": "100000",
		"PARLEY_JWT_LEEWAY":         "1s", // the expiry test's socket closes a second after its token's exp
	})
	proxy := newCutProxy(t, strings.TrimPrefix(model.base, "http://"))

	t.Run("dev login, create a room, ask, streamed answer with sources", func(t *testing.T) {
		tb, _ := roomTab(t, browser, offline.base, "alice", "Youth housing")
		watchStatuses(tb)
		ask(tb, "How much youth monthly rent support can young people receive?")
		waitAnswer(tb, "complete")
		if seen := eval[[]string](tb, `[...window.statusesSeen]`); !contains(seen, "streaming") {
			t.Errorf("the answer's statuses on the page were %v; want it shown streaming before complete", seen)
		}
		ms := tb.messages()
		a := ms[len(ms)-1]
		if !strings.Contains(a.Text, "200,000 won") || !contains(a.Sources, "housing/youth-rent.md") {
			t.Errorf("answer %+v: want it grounded in and citing housing/youth-rent.md", a)
		}
		socks := tb.ws.snapshot()
		if n := len(socks); n != 1 {
			t.Fatalf("%d sockets, want 1", n)
		}
		var chunks int
		for _, f := range socks[0].eventFrames() {
			if f["type"] == "chunk" {
				chunks++
			}
		}
		if chunks < 2 {
			t.Errorf("the page got %d chunk frames; want the answer streamed", chunks)
		}
		checkNoJWTInURLs(t, tb.ws)

		// PARLEY_SCREENSHOT=<file.png> writes the README's picture.
		if path := os.Getenv("PARLEY_SCREENSHOT"); path != "" {
			screenshot(tb, path)
		}

		// Copy confirms it copied.
		tb.do("copy the answer", chromedp.Click(chromedp.CSS(`#messages > li.assistant:last-child button.copy`)))
		tb.waitFor("the copy feedback", `document.querySelector("#messages > li.assistant:last-child button.copy").textContent === "Copied"`)

		// A user message with HTML in it is shown as the text it is.
		const img = `<img src=x onerror=alert(1)>`
		ask(tb, img)
		tb.waitFor("the second answer", `document.querySelectorAll("#messages > li.assistant[data-status=complete]").length === 2`)
		ms = tb.messages()
		if u := ms[len(ms)-2]; u.Role != "user" || u.Text != img {
			t.Errorf("user message %+v, want the text %s", u, img)
		}
		if n := eval[int](tb, `document.querySelectorAll("#messages img, #messages script").length`); n != 0 {
			t.Errorf("%d img or script elements among the messages; message text must never become HTML", n)
		}
	})

	t.Run("a model answer with HTML shows as text, Markdown rendered", func(t *testing.T) {
		tb, _ := roomTab(t, browser, model.base, "bob", "HTML")
		ask(tb, "[[script]] Show me some markup")
		waitAnswer(tb, "complete")
		a := tb.messages()[1]
		for _, want := range []string{"<script>alert(1)</script>", "<img src=x onerror=alert(2)>", "<b>code</b>", "a link is not."} {
			if !strings.Contains(a.Text, want) {
				t.Errorf("answer text %q lacks %q", a.Text, want)
			}
		}
		counts := eval[map[string]int](tb, `(() => { const li = document.querySelector("#messages > li.assistant");
			return {script: li.querySelectorAll("script").length, img: li.querySelectorAll("img").length, strong: li.querySelectorAll("strong").length,
			  code: li.querySelectorAll("code").length, links: li.querySelectorAll("a").length}; })()`)
		if want := map[string]int{"script": 0, "img": 0, "strong": 1, "code": 1, "links": 0}; fmt.Sprint(counts) != fmt.Sprint(want) {
			t.Errorf("answer elements %v, want %v", counts, want)
		}
	})

	t.Run("Enter during an IME composition does not send; Shift+Enter is a new line", func(t *testing.T) {
		tb, _ := roomTab(t, browser, model.base, "minji", "입력기")
		tb.do("focus the input", chromedp.Focus(chromedp.CSS("#input")))
		// Chrome's order (keydown with isComposing inside the composition),
		// an Enter inside it without the flag, and Safari's (keyCode 229 just
		// after compositionend): none of them sends.
		eval[bool](tb, `(() => { const el = document.getElementById("input"); el.value = "안녕하세요";
			const key = (init) => el.dispatchEvent(new KeyboardEvent("keydown", {key: "Enter", code: "Enter", bubbles: true, cancelable: true, ...init}));
			el.dispatchEvent(new CompositionEvent("compositionstart", {data: ""}));
			key({isComposing: true, keyCode: 229});
			key({keyCode: 13});
			el.dispatchEvent(new CompositionEvent("compositionend", {data: "안녕하세요"}));
			key({keyCode: 229});
			return true; })()`)
		tb.do("Shift+Enter", pressEnter(shift))
		if v := eval[string](tb, `document.getElementById("input").value`); v != "안녕하세요\n" {
			t.Errorf("input %q, want the composed text and a new line", v)
		}
		if n := len(tb.messages()); n != 0 {
			t.Fatalf("%d messages shown: the composition's Enter must not send", n)
		}
		tb.do("Enter", pressEnter(0))
		waitAnswer(tb, "complete")
		// The echo of this send came after any earlier send would have gone
		// out: one message frame in all means the composition sent nothing.
		if ms, n := tb.messages(), sentMessages(tb); len(ms) != 2 || strings.TrimSpace(ms[0].Text) != "안녕하세요" || n != 1 {
			t.Errorf("after Enter: %+v, %d message frames sent; want the one message, sent once", ms, n)
		}
	})

	t.Run("Korean UI for a Korean browser", func(t *testing.T) {
		tb := newTab(t, browser, nil, "ko-KR,ko;q=0.9,en;q=0.5")
		open(tb, offline.base)
		tb.waitFor("the Korean page", `document.documentElement.lang === "ko" && document.getElementById("dev-login").textContent === "개발용 로그인"`)
	})

	t.Run("reload mid-answer continues without gap or duplicate", func(t *testing.T) {
		tb, _ := roomTab(t, browser, model.base, "carol", "Reload")
		ask(tb, "[[hold:reload]] Tell me a long story")
		waitText(tb, "Part 09.")
		tb.do("reload", chromedp.Reload())
		tb.waitFor("the room after the reload", `document.getElementById("conn").dataset.state === "live"`)
		waitText(tb, "Part 09.")
		waitUntil(t, "the reloaded page's history frame", func() bool { s := tb.ws.snapshot(); return len(s) == 2 && s[1].history() != nil })
		socks := tb.ws.snapshot()
		h := socks[len(socks)-1].history()
		if h == nil {
			t.Fatalf("the reloaded page's socket got no history frame:\n%s", tb.ws)
		}
		if msgs := h["messages"].([]any); msgs[len(msgs)-1].(map[string]any)["status"] != "streaming" {
			t.Fatalf("history %v: want the answer still streaming", h)
		}
		fake.release("reload")
		waitAnswer(tb, "complete")
		waitFrame(t, tb, "answer")
		checkAnswerText(t, tb)
		checkStream(t, tb.ws.snapshot()[len(socks)-1:])
	})

	t.Run("a dropped connection resumes with ?after=, no gap or duplicate", func(t *testing.T) {
		tb, _ := roomTab(t, browser, proxy.base(), "dave", "Outage")
		ask(tb, "[[hold:cut]] Tell me a long story")
		waitText(tb, "Part 09.")
		proxy.cut()
		waitUntil(t, "a second socket", func() bool { return len(tb.ws.snapshot()) >= 2 })
		tb.waitFor("the page live again", `document.getElementById("conn").dataset.state === "live"`)
		socks := tb.ws.snapshot()
		last := socks[0].eventFrames()
		wantAfter := "after=" + strconv.FormatInt(int64(last[len(last)-1]["version"].(float64)), 10)
		if u := socks[1].url; !strings.Contains(u, wantAfter) {
			t.Errorf("reconnected to %s, want %s (the last version seen)", redactTicket(u), wantAfter)
		}
		fake.release("cut")
		waitAnswer(tb, "complete")
		waitFrame(t, tb, "answer")
		checkAnswerText(t, tb)
		checkStream(t, tb.ws.snapshot())
		checkNoJWTInURLs(t, tb.ws)
	})

	t.Run("busy and the rate limit are shown, the draft kept; Stop cancels", func(t *testing.T) {
		tb, _ := roomTab(t, browser, model.base, "erin", "Cancel")
		ask(tb, "[[hold:cancel]] Tell me a long story")
		waitText(tb, "Part 09.")
		ask(tb, "And another thing?")
		tb.waitFor("the busy notice", `document.getElementById("notice").dataset.code === "busy" && !document.getElementById("notice").hidden`)
		if v := eval[string](tb, `document.getElementById("input").value`); v != "And another thing?" {
			t.Errorf("input %q after busy: the refused message must stay in the input", v)
		}
		// Sending on while refused runs into the message rate limit (a
		// burst of 5), which is shown too.
		for i := 0; ; i++ {
			code := eval[string](tb, `(() => { const n = document.getElementById("notice"); const c = n.dataset.code; n.dataset.code = ""; return c; })()`)
			if code == "rate_limited" {
				break
			}
			if i == 15 {
				t.Fatalf("no rate_limited notice after %d refused sends (last %q)", i, code)
			}
			tb.do("send again", pressEnter(0))
			tb.waitFor("the refusal", `document.getElementById("notice").dataset.code !== "" && !document.getElementById("send").disabled`)
		}
		if v := eval[string](tb, `document.getElementById("notice").textContent`); !strings.Contains(v, "too fast") {
			t.Errorf("rate limit notice %q", v)
		}
		tb.do("stop", chromedp.Click(chromedp.CSS("#stop")))
		waitAnswer(tb, "cancelled")
		if !fake.wasCancelled("cancel") {
			t.Error("the model's request was not cancelled")
		}
		if eval[bool](tb, `!document.getElementById("stop").hidden`) {
			t.Error("Stop still shown after the answer was cancelled")
		}
	})

	t.Run("two tabs on one room see the same frames", func(t *testing.T) {
		a, id := roomTab(t, browser, model.base, "frank", "Two tabs")
		b := newTab(t, browser, a, "") // same browser profile: already signed in
		open(b, model.base+"/#room="+strconv.FormatInt(id, 10))
		b.waitFor("the second tab live", `document.getElementById("conn").dataset.state === "live"`)
		a.waitFor("the first tab live", `document.getElementById("conn").dataset.state === "live"`)
		ask(a, "Hello from tab A")
		waitAnswer(a, "complete")
		waitAnswer(b, "complete")
		waitFrame(t, a, "answer")
		waitFrame(t, b, "answer")
		ma, mb := a.messages(), b.messages()
		if fmt.Sprint(ma) != fmt.Sprint(mb) || len(ma) != 2 {
			t.Errorf("tab A shows %+v, tab B %+v; want the same question and answer", ma, mb)
		}
		fa, fb := a.ws.snapshot()[0], b.ws.snapshot()[0]
		if ja, jb := mustJSON(fa.eventFrames()), mustJSON(fb.eventFrames()); ja != jb {
			t.Errorf("the tabs got different frames:\n%s\n%s", ja, jb)
		}
	})

	t.Run("deleting a room closes it in every tab", func(t *testing.T) {
		a, doomed := roomTab(t, browser, model.base, "ivan", "Doomed")
		createRoom(a, "Kept")
		b := newTab(t, browser, a, "")
		open(b, model.base+"/#room="+strconv.FormatInt(doomed, 10))
		b.waitFor("the doomed room, live", `document.getElementById("conn").dataset.state === "live"`)
		del := chromedp.CSS(fmt.Sprintf(`#room-list li[data-id="%d"] button.delete`, doomed))
		a.do("delete the room", chromedp.Click(del))
		a.waitFor("the confirmation", fmt.Sprintf(`document.querySelector('#room-list li[data-id="%d"] button.delete').classList.contains("confirm")`, doomed))
		a.do("confirm", chromedp.Click(del))
		a.waitFor("the room gone from the list", fmt.Sprintf(`!document.querySelector('#room-list li[data-id="%d"]') && document.querySelectorAll("#room-list li").length === 1`, doomed))
		b.waitFor("the other tab told", `document.getElementById("notice").dataset.code === "gone" && document.getElementById("room").hidden`)
		if code := model.api(t, "GET", "/api/rooms/"+strconv.FormatInt(doomed, 10), mustDevToken(t, "ivan"), "", nil); code != http.StatusNotFound {
			t.Errorf("GET the deleted room = %d, want 404", code)
		}
	})

	t.Run("an expired token closes 4401 and the page asks for a new one", func(t *testing.T) {
		tb := newTab(t, browser, nil, "")
		open(tb, model.base)
		short, err := jwtauth.Mint([]byte(jwtauth.DevJWTSecret), "grace", 6*time.Second, time.Now(), nil)
		if err != nil {
			t.Fatal(err)
		}
		tb.do("paste a token", chromedp.SetValue(chromedp.CSS("#token-input"), short), chromedp.Click(chromedp.CSS("#token-signin")))
		tb.waitFor("the rooms", `!document.getElementById("app").hidden`)
		createRoom(tb, "Expiry")
		ask(tb, "Hello before expiry")
		waitAnswer(tb, "complete")
		tb.waitFor("the sign-in form again", `!document.getElementById("signin").hidden && !document.getElementById("signin-reason").hidden`)
		if s := eval[string](tb, `document.getElementById("conn").dataset.state`); s != "expired" {
			t.Errorf("connection state %q, want expired", s)
		}
		devLogin(tb, "grace")
		tb.waitFor("the room live again", `document.getElementById("conn").dataset.state === "live"`)
		socks := tb.ws.snapshot()
		if last := socks[len(socks)-1].url; len(socks) < 2 || !strings.Contains(last, "after=") || !strings.Contains(last, "hash=") {
			t.Errorf("after signing in again the page connected to %s; want a resume with ?after= and &hash=", redactTicket(last))
		}
		if n := len(tb.messages()); n != 2 {
			t.Errorf("%d messages after the new sign-in, want the 2 already shown", n)
		}
	})

	t.Run("CORS from an allowed and a foreign site", func(t *testing.T) {
		tok := "Bearer " + mustDevToken(t, "heidi")
		call := func(site string) map[string]any {
			tb := newTab(t, browser, nil, "")
			tb.do("open the other site", chromedp.Navigate(site+"/"))
			return eval[map[string]any](tb, fmt.Sprintf(`(async () => {
				const post = (auth) => fetch(%q + "/api/rooms", {method: "POST", headers: {"Authorization": auth, "Content-Type": "application/json"}, body: JSON.stringify({title: "From afar"})});
				try {
					const ok = await post(%q), bad = await post("Bearer nope");
					return {status: ok.status, location: ok.headers.get("Location"), badStatus: bad.status, badBody: await bad.json()};
				} catch (e) { return {error: String(e)}; }
			})()`, offline.base, tok))
		}
		got := call(allowedSite.URL)
		if got["status"] != 201.0 || !strings.HasPrefix(fmt.Sprint(got["location"]), "/api/rooms/") || got["badStatus"] != 401.0 ||
			!strings.Contains(mustJSON(got["badBody"]), `"unauthorized"`) {
			t.Errorf("from the allowed site: %v; want 201 with a readable Location, and a readable 401 body", got)
		}
		if got := call(foreignSite.URL); !strings.Contains(fmt.Sprint(got["error"]), "Failed to fetch") {
			t.Errorf("from a foreign site: %v; want the browser to refuse (the preflight is 403)", got)
		}
	})
}
