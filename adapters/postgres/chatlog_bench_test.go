package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
	"github.com/parleychat/parley/projections"
)

// benchLog builds a log the way a rebuild meets it: rooms conversing at
// the same time, their events interleaved, chunks dominating. Every room
// is created, then asks answers questions of chunks deltas each.
func benchLog(rooms, answers, chunks int) []domain.RecordedEvent {
	type stream struct {
		id     int64
		events []domain.RecordedEvent
	}
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	streams := make([]*stream, rooms)
	for r := range streams {
		s := &stream{id: int64(r + 1)}
		add := func(e room.Event) {
			b, err := json.Marshal(e)
			if err != nil {
				panic(err)
			}
			s.events = append(s.events, domain.RecordedEvent{
				ID: domain.NameUUID(uuid(r), fmt.Sprint(len(s.events))), Type: e.EventType(), Data: b,
				Stream: room.Stream(s.id), Version: int64(len(s.events)),
			})
		}
		add(room.RoomCreated{RoomID: s.id, OwnerID: fmt.Sprintf("user-%d", r%50), Title: fmt.Sprintf("Room %d", r)})
		for a := range answers {
			q, ans := uuid(r*1000+2*a), uuid(r*1000+2*a+1)
			add(room.MessagePosted{MessageID: q, UserID: "u", Text: "How much is the housing allowance for students?"})
			add(room.AnswerStarted{AnswerID: ans, QuestionID: q, Model: "test/bench", Instance: "chatd-1"})
			text := ""
			for c := range chunks {
				d := []string{"The ", "allowance ", "is ", "up ", "to ", "200,000 ", "won ", "a ", "month. "}[c%9]
				text += d
				add(room.AnswerChunk{AnswerID: ans, Seq: c, Delta: d})
			}
			add(room.AnswerCompleted{AnswerID: ans, Text: text, Sources: []room.Source{{Document: "policy.pdf", ChunkID: "p3", Score: 0.83}}, Chunks: chunks})
		}
		streams[r] = s
	}
	// Interleave the streams a few events at a time, as concurrent answers
	// with group-committed chunks would be.
	var out []domain.RecordedEvent
	for left := true; left; {
		left = false
		for _, s := range streams {
			n := min(8, len(s.events))
			for _, ev := range s.events[:n] {
				ev.Position = domain.Position{Commit: uint64(len(out) + 1), Prepare: uint64(len(out) + 1)}
				ev.RecordedAt = at.Add(time.Duration(len(out)) * time.Millisecond)
				out = append(out, ev)
			}
			s.events = s.events[n:]
			left = left || len(s.events) > 0
		}
	}
	return out
}

// BenchmarkChatLogApply measures ChatLog.Apply alone on the store's batch
// size, from empty tables: the projection's side of a rebuild.
//
//	go test -run '^$' -bench ChatLogApply -benchtime 5x ./adapters/postgres/
func BenchmarkChatLogApply(b *testing.B) {
	e := newChatEnv(b, 0)
	evs := benchLog(100, 5, 200) // 100 rooms, 500 answers, 100,000 chunks
	ctx := context.Background()
	n := 0
	for b.Loop() {
		b.StopTimer()
		if _, err := e.pool.Exec(ctx, `TRUNCATE rooms, chat_logs, projection_checkpoints`); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for batch := range slices.Chunk(evs, domain.DefaultReadLimit) {
			if err := e.log.Apply(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		n++
	}
	b.ReportMetric(float64(n*len(evs))/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkChatLogRebuild measures a whole rebuild through the Runner:
// reading the log from the Postgres store and applying it.
//
//	go test -run '^$' -bench ChatLogRebuild -benchtime 3x ./adapters/postgres/
func BenchmarkChatLogRebuild(b *testing.B) {
	e := newChatEnv(b, 0)
	evs := benchLog(100, 5, 200)
	ctx := context.Background()
	// Store the log, an append per run of one stream's events.
	for i := 0; i < len(evs); {
		j := i + 1
		for j < len(evs) && evs[j].Stream == evs[i].Stream {
			j++
		}
		data := make([]domain.EventData, 0, j-i)
		for _, ev := range evs[i:j] {
			data = append(data, domain.EventData{ID: ev.ID, Type: ev.Type, Data: ev.Data})
		}
		if _, err := e.store.Append(ctx, evs[i].Stream, domain.Exact(evs[i].Version-1), data...); err != nil {
			b.Fatal(err)
		}
		i = j
	}
	settle(b, e)
	head, err := e.store.HeadPosition(ctx)
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for b.Loop() {
		b.StopTimer()
		if _, err := e.pool.Exec(ctx, `TRUNCATE rooms, chat_logs, projection_checkpoints`); err != nil {
			b.Fatal(err)
		}
		r := &projections.Runner{Store: e.store, Projection: e.log}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		b.StartTimer()
		go func() { done <- r.Run(rctx) }()
		if err := r.WaitFor(ctx, head); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		n++
	}
	b.ReportMetric(float64(n*len(evs))/b.Elapsed().Seconds(), "events/s")
}
