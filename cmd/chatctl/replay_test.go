package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/inmem"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden files from the current output")

// t0 is when the fixed conversation starts.
var t0 = time.Date(2026, 3, 14, 9, 26, 53, 589_000_000, time.UTC)

// fixedID returns the UUID 00000000-0000-4000-8000-<n as 12 hex digits>.
func fixedID(n int) domain.UUID {
	var u domain.UUID
	u[6], u[8] = 0x40, 0x80
	for i := 15; i >= 10 && n > 0; i-- {
		u[i] = byte(n)
		n >>= 8
	}
	return u
}

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// countingReader yields 0, 1, 2, ... so each UUID drawn from it differs and
// every run draws the same ones.
type countingReader struct{ n byte }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.n
		r.n++
	}
	return len(p), nil
}

// step is one append of the fixed conversation: its events, appended at
// offset after t0.
type step struct {
	at     time.Duration
	events []any // room.Event, or rawEvent for types room does not know
}

type rawEvent struct{ typ, data string }

const fixedRoom = 7

var (
	msg1, ans1 = fixedID(1), fixedID(2)
	msg2, ans2 = fixedID(3), fixedID(4)
	msg3, ans3 = fixedID(5), fixedID(6)
)

// conversation is the fixed conversation of room 7: an answer with a
// retrieval record and sources, an audit, a failed answer, a cancelled
// one, an event of a later feature, and the room's deletion.
var conversation = []step{
	{0, []any{room.RoomCreated{RoomID: fixedRoom, OwnerID: "42", Title: "Youth housing"}}},
	{time.Second, []any{
		room.MessagePosted{MessageID: msg1, ClientID: "c-1", UserID: "42", Text: "How much is the youth housing allowance?"},
		room.AnswerStarted{AnswerID: ans1, QuestionID: msg1, Model: "offline/extractive", Instance: "chatd-1"},
	}},
	{1100 * time.Millisecond, []any{rawEvent{typeRetrievalRecorded,
		`{"answer_id":"` + ans1.String() + `","query":"youth housing allowance","passages":[{"document":"guide.pdf","chunk_id":"c3","score":0.82}]}`}}},
	{1300 * time.Millisecond, []any{
		room.AnswerChunk{AnswerID: ans1, Seq: 0, Delta: "Up to "},
		room.AnswerChunk{AnswerID: ans1, Seq: 1, Delta: "200,000 won\na month."},
	}},
	{1800 * time.Millisecond, []any{room.AnswerChunk{AnswerID: ans1, Seq: 2, Delta: " See the guide."}}},
	{2 * time.Second, []any{room.AnswerCompleted{AnswerID: ans1, Text: "Up to 200,000 won\na month. See the guide.", Chunks: 3,
		Sources: []room.Source{{Document: "guide.pdf", ChunkID: "c3", Score: 0.82, Snippet: "The allowance is up to\n200,000 won a month."}}}}},
	{30 * time.Second, []any{room.AuditAccessed{UserID: "auditor-9", Interface: room.InterfaceWebSocket, At: t0.Add(30 * time.Second)}}},
	{60 * time.Second, []any{
		room.MessagePosted{MessageID: msg2, UserID: "42", Text: "And for jobs?"},
		room.AnswerStarted{AnswerID: ans2, QuestionID: msg2, Model: "offline/extractive", Instance: "chatd-1"},
	}},
	{61 * time.Second, []any{room.AnswerChunk{AnswerID: ans2, Seq: 0, Delta: "Job "}}},
	{62 * time.Second, []any{room.AnswerFailed{AnswerID: ans2, Reason: room.ReasonGeneratorError, Text: "Job "}}},
	{120 * time.Second, []any{
		room.MessagePosted{MessageID: msg3, UserID: "42", Text: "Try again?"},
		room.AnswerStarted{AnswerID: ans3, QuestionID: msg3, Model: "offline/extractive", Instance: "chatd-2"},
	}},
	{121 * time.Second, []any{room.AnswerChunk{AnswerID: ans3, Seq: 0, Delta: "Yes"}}},
	{122 * time.Second, []any{room.AnswerCancelled{AnswerID: ans3, Reason: room.ReasonCancelled, By: "42", Text: "Yes"}}},
	{3600 * time.Second, []any{rawEvent{"SummaryRecorded", `{"summary":"Housing allowance asked; jobs failed.",  "upto": 16}`}}},
	{3700 * time.Second, []any{room.RoomDeleted{RoomID: fixedRoom, DeletedBy: "42"}}},
}

// writeConversation appends the fixed conversation to room id of s, event
// IDs fixedID(100+i), each step at its time on c (which s stamps with).
func writeConversation(t testing.TB, s domain.Appender, c *clock, id int64) {
	t.Helper()
	n := 0
	for _, st := range conversation {
		var data []domain.EventData
		for _, e := range st.events {
			typ, b := "", []byte(nil)
			switch e := e.(type) {
			case rawEvent:
				typ, b = e.typ, []byte(e.data)
			case room.Event:
				typ = e.EventType()
				var err error
				if b, err = json.Marshal(e); err != nil {
					t.Fatal(err)
				}
			}
			meta, _ := json.Marshal(domain.Metadata{UserID: "42", OccurredAt: t0.Add(st.at)})
			data = append(data, domain.EventData{ID: fixedID(100 + n), Type: typ, Data: b, Metadata: meta})
			n++
		}
		if c != nil {
			c.set(t0.Add(st.at))
		}
		if _, err := s.Append(context.Background(), room.Stream(id), domain.Any(), data...); err != nil {
			t.Fatal(err)
		}
	}
}

// conversationEvents is how many events the fixed conversation has.
func conversationEvents() int {
	n := 0
	for _, st := range conversation {
		n += len(st.events)
	}
	return n
}

// fixedStore returns an in-memory store holding the fixed conversation,
// and the clock it stamps with (left at the time the replay happens).
func fixedStore(t *testing.T) (*inmem.Store, *clock) {
	t.Helper()
	c := &clock{}
	s := inmem.New(c.Now)
	writeConversation(t, s, c, fixedRoom)
	c.set(t0.Add(24 * time.Hour))
	return s, c
}

// sleepLog records the waits a replay asks for, and how much output there
// was at each.
type sleepLog struct {
	out    *bytes.Buffer
	waits  []time.Duration
	before []int // lines written before each wait
}

func (l *sleepLog) sleep(_ context.Context, d time.Duration) error {
	l.waits = append(l.waits, d)
	l.before = append(l.before, strings.Count(l.out.String(), "\n"))
	return nil
}

// replayFixed replays the fixed conversation with args and returns the
// output and the waits.
func replayFixed(t *testing.T, s *inmem.Store, c *clock, args ...string) (string, *sleepLog) {
	t.Helper()
	o, err := parseReplay(append([]string{"--room", "7", "--operator", "ops-1"}, args...), env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	var out bytes.Buffer
	sl := &sleepLog{out: &out}
	r := &replayer{store: s, out: &out, sleep: sl.sleep, now: c.Now, random: &countingReader{}}
	if err := r.run(t.Context(), o); err != nil {
		t.Fatalf("replay %v: %v", args, err)
	}
	return out.String(), sl
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/chatctl -run %s -update to create it)", err, t.Name())
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got; rerun with -update if the change is intended):\n%s", path, diff)
	}
}

func TestReplayGolden(t *testing.T) {
	tests := []struct {
		file string
		args []string
	}{
		{"replay.text.golden", nil},
		{"replay.jsonl.golden", []string{"--format", "jsonl"}},
		{"replay_asof_v5.text.golden", []string{"--as-of", "5"}},
		{"replay_asof_v5.jsonl.golden", []string{"--as-of", "5", "--format", "jsonl"}},
		{"replay_asof_time.text.golden", []string{"--as-of", t0.Add(121500 * time.Millisecond).Format(time.RFC3339Nano)}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			s, c := fixedStore(t)
			got, sl := replayFixed(t, s, c, tc.args...)
			if len(sl.waits) > 0 {
				t.Errorf("replay at the default speed waited %v; want no waits", sl.waits)
			}
			golden(t, tc.file, got)
		})
	}
}

// TestReplayRecordsTheRead: the read is an AuditAccessed of the operator
// over cli, appended after the conversation and not shown by the replay.
func TestReplayRecordsTheRead(t *testing.T) {
	s, c := fixedStore(t)
	got, _ := replayFixed(t, s, c, "--format", "jsonl")
	n := conversationEvents()
	if lines := strings.Count(got, "\n"); lines != n {
		t.Errorf("jsonl replay printed %d lines, want the %d events before the read's record", lines, n)
	}
	evs, err := s.ReadStream(t.Context(), room.Stream(fixedRoom), domain.ReadStreamOptions{From: int64(n)})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 {
		t.Fatalf("%d events after the conversation, want the one AuditAccessed", len(evs))
	}
	p, err := room.Decode(evs[0], false)
	if err != nil {
		t.Fatal(err)
	}
	want := room.AuditAccessed{UserID: "ops-1", Interface: room.InterfaceCLI, At: c.Now()}
	if diff := cmp.Diff(room.Event(want), p); diff != "" {
		t.Errorf("recorded (-want +got):\n%s", diff)
	}
}

func TestReplaySpeed(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		args []string
		want []time.Duration
	}{
		{"max", []string{"--speed", "max"}, nil},
		{"10x, 5s cap", []string{"--speed", "10x"}, []time.Duration{
			100 * ms, 10 * ms, 20 * ms, 50 * ms, 20 * ms, 2800 * ms, 3000 * ms, 100 * ms, 100 * ms,
			5000 * ms, 100 * ms, 100 * ms, 5000 * ms, 5000 * ms}},
		{"10x, no cap", []string{"--speed", "10x", "--max-gap", "0"}, []time.Duration{
			100 * ms, 10 * ms, 20 * ms, 50 * ms, 20 * ms, 2800 * ms, 3000 * ms, 100 * ms, 100 * ms,
			5800 * ms, 100 * ms, 100 * ms, 347800 * ms, 10000 * ms}},
		{"1x, 2s cap", []string{"--speed", "1x", "--max-gap", "2s"}, []time.Duration{
			1000 * ms, 100 * ms, 200 * ms, 500 * ms, 200 * ms, 2000 * ms, 2000 * ms, 1000 * ms, 1000 * ms,
			2000 * ms, 1000 * ms, 1000 * ms, 2000 * ms, 2000 * ms}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, c := fixedStore(t)
			_, sl := replayFixed(t, s, c, append(tc.args, "--format", "jsonl")...)
			if diff := cmp.Diff(tc.want, sl.waits); diff != "" {
				t.Errorf("waits (-want +got):\n%s", diff)
			}
			// Each wait comes just before the event it delays is printed:
			// right after the last event of the previous append.
			var wantBefore []int
			n := 0
			for i, st := range conversation {
				if i > 0 && len(tc.want) > 0 {
					wantBefore = append(wantBefore, n)
				}
				n += len(st.events)
			}
			if len(tc.want) == 0 {
				wantBefore = nil
			}
			if diff := cmp.Diff(wantBefore, sl.before); diff != "" {
				t.Errorf("lines printed before each wait (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReplayFollow(t *testing.T) {
	c := &clock{now: t0}
	s := inmem.New(c.Now)
	// The room without its deletion, which ends a follow.
	writeConversation(t, s, c, fixedRoom)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	o, err := parseReplay([]string{"--room", "8", "--operator", "ops-1", "--follow", "--format", "jsonl"}, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	meta := json.RawMessage(`{}`)
	if _, err := s.Append(ctx, room.Stream(8), domain.NoStream(), domain.EventData{ID: fixedID(900), Type: room.TypeRoomCreated, Data: []byte(`{"room_id":8,"owner_id":"42","title":"Jobs"}`), Metadata: meta}); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	r := &replayer{store: s, out: pw, sleep: sleepContext, now: c.Now, random: &countingReader{}}
	done := make(chan error, 1)
	go func() { done <- r.run(ctx, o); pw.Close() }()

	lines := make(chan map[string]any, 10)
	go func() {
		dec := json.NewDecoder(pr)
		for {
			var m map[string]any
			if dec.Decode(&m) != nil {
				close(lines)
				return
			}
			lines <- m
		}
	}()
	next := func() map[string]any {
		t.Helper()
		select {
		case m := <-lines:
			return m
		case <-ctx.Done():
			t.Fatal("no line within 10s")
			return nil
		}
	}
	wantTypes := []string{room.TypeRoomCreated, room.TypeAuditAccessed} // the replay, then its own record, live
	var got []string
	for range wantTypes {
		got = append(got, next()["type"].(string))
	}
	if _, err := s.Append(ctx, room.Stream(8), domain.Any(), domain.EventData{ID: fixedID(901), Type: room.TypeRoomDeleted, Data: []byte(`{"room_id":8,"deleted_by":"42"}`), Metadata: meta}); err != nil {
		t.Fatal(err)
	}
	got = append(got, next()["type"].(string))
	wantTypes = append(wantTypes, room.TypeRoomDeleted)
	if diff := cmp.Diff(wantTypes, got); diff != "" {
		t.Errorf("followed events (-want +got):\n%s", diff)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("follow ended with %v, want nil after the room's deletion", err)
		}
	case <-ctx.Done():
		t.Fatal("follow did not end after the room's deletion")
	}
}

func TestParseReplayRefusals(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no room", []string{"--operator", "x"}, nil, "--room is required"},
		{"bad format", []string{"--room", "1", "--operator", "x", "--format", "xml"}, nil, `--format "xml"`},
		{"bad speed", []string{"--room", "1", "--operator", "x", "--speed", "fast"}, nil, `--speed "fast"`},
		{"zero speed", []string{"--room", "1", "--operator", "x", "--speed", "0x"}, nil, `--speed "0x"`},
		{"negative gap", []string{"--room", "1", "--operator", "x", "--max-gap", "-1s"}, nil, "--max-gap -1s is negative"},
		{"bad as-of", []string{"--room", "1", "--operator", "x", "--as-of", "last tuesday"}, nil, "neither a stream version"},
		{"as-of and follow", []string{"--room", "1", "--operator", "x", "--as-of", "3", "--follow"}, nil, "--follow cannot be combined with --as-of"},
		{"as-of and speed", []string{"--room", "1", "--operator", "x", "--as-of", "3", "--speed", "1x"}, nil, "--speed cannot be combined"},
		{"nobody", []string{"--room", "1"}, nil, "cannot tell who is reading"},
		{"stray argument", []string{"--room", "1", "--operator", "x", "7"}, nil, `unexpected argument "7"`},
	}
	for _, tc := range tests {
		_, err := parseReplay(tc.args, env(tc.env), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	o, err := parseReplay([]string{"--room", "1"}, env(map[string]string{"USER": "sam"}), &bytes.Buffer{})
	if err != nil || o.operator != "sam" || o.speed != 0 || o.format != "text" || o.maxGap != 5*time.Second {
		t.Errorf("defaults: %+v, %v", o, err)
	}
	o, _ = parseReplay([]string{"--room", "1"}, env(map[string]string{"USER": "sam", "PARLEY_OPERATOR": "ops"}), &bytes.Buffer{})
	if o.operator != "ops" {
		t.Errorf("operator %q, want PARLEY_OPERATOR's ops", o.operator)
	}
}

func TestReplayOfMissingRoom(t *testing.T) {
	s, c := fixedStore(t)
	o, _ := parseReplay([]string{"--room", "99", "--operator", "x"}, env(nil), &bytes.Buffer{})
	r := &replayer{store: s, out: &bytes.Buffer{}, sleep: sleepContext, now: c.Now, random: &countingReader{}}
	err := r.run(t.Context(), o)
	if domain.ErrorCode(err) != domain.ENOTFOUND || !strings.Contains(err.Error(), "room 99 does not exist") {
		t.Errorf("error %v, want room 99 not found", err)
	}
	if _, err := s.ReadStream(t.Context(), room.Stream(99), domain.ReadStreamOptions{}); err == nil {
		t.Error("replaying a missing room created its stream")
	}
	o, _ = parseReplay([]string{"--room", "7", "--operator", "x", "--as-of", "2020-01-01T00:00:00Z"}, env(nil), &bytes.Buffer{})
	if err := r.run(t.Context(), o); domain.ErrorCode(err) != domain.ENOTFOUND || !strings.Contains(err.Error(), "did not exist yet") {
		t.Errorf("as of a time before the room: %v", err)
	}
}

// TestReplayKeepsTheDeltasPace: a chunk of several deltas replayed with
// timing prints each delta after its recorded offset from the one before
// (scaled by the speed, capped by --max-gap); at max speed, at once.
func TestReplayKeepsTheDeltasPace(t *testing.T) {
	c := &clock{}
	s := inmem.New(c.Now)
	ms := time.Millisecond
	at := []time.Time{t0, t0.Add(30 * ms), t0.Add(80 * ms), t0.Add(5080 * ms)}
	var data []domain.EventData
	for i, e := range []room.Event{
		room.RoomCreated{RoomID: fixedRoom, OwnerID: "42", Title: "Pace"},
		room.MessagePosted{MessageID: msg1, UserID: "42", Text: "How much?"},
		room.AnswerStarted{AnswerID: ans1, QuestionID: msg1},
		room.NewAnswerChunk(ans1, 0, []string{"Up ", "to ", "200,000 ", "won."}, at),
	} {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, domain.EventData{ID: fixedID(200 + i), Type: e.EventType(), Data: b})
	}
	c.set(t0)
	if _, err := s.Append(t.Context(), room.Stream(fixedRoom), domain.NoStream(), data...); err != nil {
		t.Fatal(err)
	}
	c.set(t0.Add(time.Hour))
	for _, tc := range []struct {
		args []string
		want []time.Duration
	}{
		{[]string{"--speed", "max"}, nil},
		{[]string{"--speed", "1x"}, []time.Duration{30 * ms, 50 * ms, 5000 * ms}},
		{[]string{"--speed", "10x", "--max-gap", "100ms"}, []time.Duration{3 * ms, 5 * ms, 100 * ms}},
	} {
		out, sl := replayFixed(t, s, c, tc.args...)
		if diff := cmp.Diff(tc.want, sl.waits); diff != "" {
			t.Errorf("%v: waits (-want +got):\n%s", tc.args, diff)
		}
		if !strings.Contains(out, "    Up to 200,000 won.\n") {
			t.Errorf("%v: the deltas do not make one line of text:\n%s", tc.args, out)
		}
	}
}
