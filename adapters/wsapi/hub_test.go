package wsapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

// errorCount counts the error records logged through it.
type errorCount struct {
	mu sync.Mutex
	n  int
}

func (h *errorCount) Enabled(context.Context, slog.Level) bool { return true }
func (h *errorCount) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *errorCount) WithGroup(string) slog.Handler            { return h }
func (h *errorCount) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.Level >= slog.LevelError {
		h.n++
	}
	return nil
}

func (h *errorCount) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// TestDispatchSkipsWhatTheTapDelivered: once the tap has handed chunks to
// every connection of a room, the log subscription's copies are neither
// decoded nor encoded again. The subscription's copies carry data that
// cannot be decoded, so decoding one would log an error.
func TestDispatchSkipsWhatTheTapDelivered(t *testing.T) {
	errs := &errorCount{}
	h := NewHub(nil, slog.New(errs))
	c := newConn(nil, "chat", 16, Timing{}, nopMetrics{})
	c.lastQueued = 4 // the catch-up sent versions 0 to 4
	c.goLive()
	h.register(7, c)
	stream := room.Stream(7)

	answer := domain.UUID{1}
	chunk := func(seq int) domain.EventData {
		return domain.EventData{ID: domain.UUID{byte(seq)}, Type: room.TypeAnswerChunk,
			Data: []byte(`{"answer_id":"` + answer.String() + `","seq":` + strconv.Itoa(seq) + `,"delta":"x"}`)}
	}
	h.local(stream, domain.AppendResult{Version: 6}, []domain.EventData{chunk(0), chunk(1)})

	bad := func(v int64) domain.RecordedEvent {
		return domain.RecordedEvent{Stream: stream, Version: v, Type: room.TypeAnswerChunk, Data: []byte("not json"),
			Position: domain.Position{Commit: uint64(v), Prepare: uint64(v)}}
	}
	if err := h.dispatch(t.Context(), []domain.RecordedEvent{bad(5), bad(6)}); err != nil {
		t.Fatal(err)
	}
	if got := errs.count(); got != 0 {
		t.Errorf("dispatching versions the tap delivered logged %d errors, want 0 (they were decoded again)", got)
	}
	// The dispatch still counts as handed over.
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	close(h.ready)
	if err := h.WaitFor(ctx, domain.Position{Commit: 6, Prepare: 6}); err != nil {
		t.Errorf("WaitFor after the skipped dispatch: %v", err)
	}

	// A version no connection has yet is decoded (and here refused).
	if err := h.dispatch(t.Context(), []domain.RecordedEvent{bad(7)}); err != nil {
		t.Fatal(err)
	}
	if got := errs.count(); got != 1 {
		t.Errorf("dispatching a new version logged %d errors, want 1", got)
	}

	var got []int64
	for _, f := range c.take() {
		got = append(got, f.version)
	}
	if diff := cmp.Diff([]int64{5, 6}, got); diff != "" {
		t.Errorf("queued versions (-want +got):\n%s", diff)
	}
}

// TestChunkFrames: a chunk of several deltas is one frame with its text
// joined, the first delta's seq and the count; a chunk of one (the form
// older logs hold) says deltas 1.
func TestChunkFrames(t *testing.T) {
	answer := domain.UUID{1}
	at := time.Unix(1000, 0)
	tests := []struct {
		chunk room.AnswerChunk
		want  string
	}{
		{room.AnswerChunk{AnswerID: answer, Seq: 0, Delta: "Up "},
			`{"type":"chunk","answer_id":"` + answer.String() + `","seq":0,"deltas":1,"message":"Up ","is_streaming":true,"version":3}`},
		{room.NewAnswerChunk(answer, 1, []string{"to ", "200,", "000"}, []time.Time{at, at, at}),
			`{"type":"chunk","answer_id":"` + answer.String() + `","seq":1,"deltas":3,"message":"to 200,000","is_streaming":true,"version":3}`},
	}
	for _, tc := range tests {
		data, err := json.Marshal(tc.chunk)
		if err != nil {
			t.Fatal(err)
		}
		f, ok, err := eventFrame(domain.RecordedEvent{Stream: room.Stream(7), Version: 3, Type: room.TypeAnswerChunk, Data: data})
		if err != nil || !ok {
			t.Fatalf("eventFrame = %v, %v", ok, err)
		}
		if string(f.data) != tc.want {
			t.Errorf("frame\n got %s\nwant %s", f.data, tc.want)
		}
	}
}

// TestChunkFrameOfMatchesTheDecodedFrame: the frame written from a chunk's
// data without decoding it is byte for byte the frame of the decoded
// chunk, for chunks of one delta and of several, whatever their text; data
// in any other form is left to the decoder.
func TestChunkFrameOfMatchesTheDecodedFrame(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"a", "é", "\"", "\\", "<b>", "&", "\n", "\t", "\u2028", "😀", "청년", " ", "\x01", "}", ",\"ends\":[1]"}
	at := time.Unix(1000, 0)
	for i := range 2000 {
		n := 1 + rng.IntN(4)
		deltas := make([]string, n)
		times := make([]time.Time, n)
		for k := range deltas {
			var b strings.Builder
			for range 1 + rng.IntN(5) {
				b.WriteString(pieces[rng.IntN(len(pieces))])
			}
			deltas[k], times[k] = b.String(), at.Add(time.Duration(k*7)*time.Millisecond)
		}
		id := domain.UUID{byte(i), byte(i >> 8), 0xab, 0xcd}
		c := room.NewAnswerChunk(id, rng.IntN(100000), deltas, times)
		data, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		hash := "" // events written before the audit chain have none
		if i%2 == 1 {
			hash = fmt.Sprintf("%064x", i)
		}
		got, ok := chunkFrameOf(data, int64(i), hash)
		if !ok {
			t.Fatalf("chunkFrameOf(%s) refused json.Marshal's form", data)
		}
		want, err := json.Marshal(chunkFrame{Type: "chunk", AnswerID: c.AnswerID.String(), Seq: c.Seq, Deltas: c.Count(), Message: c.Delta, IsStreaming: true, Version: int64(i), Hash: hash})
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("chunkFrameOf(%s)\n got %s\nwant %s", data, got, want)
		}
	}
	for _, data := range []string{
		`{"answer_id":"0B9F6F0E-3A0C-4E7E-9A55-3C9D2F1E8A77","seq":1,"delta":"x"}`, // upper case
		`{"seq":1,"answer_id":"0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a77","delta":"x"}`, // other order
		`{"answer_id":"0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a77","seq":01,"delta":"x"}`,
		`{"answer_id":"0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a77","seq":1,"delta":""}`,
		`{"answer_id":"0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a77","seq":1,"delta":"x","extra":1}`,
		`{"answer_id":"0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a77","seq":1,"delta":"xy","ends":[1]}`,
		`{"answer_id":"0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a77","seq":1,"delta":"xyz","ends":[1,2],"offsets_ms":[3]}`,
		`{"answer_id":"0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a77","seq":1,"delta":"x`,
	} {
		if f, ok := chunkFrameOf([]byte(data), 1, ""); ok {
			t.Errorf("chunkFrameOf(%s) = %s; want it left to the decoder", data, f)
		}
	}
}
