package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/parleychat/parley/adapters/offline"
	"github.com/parleychat/parley/adapters/wsapi"
	"github.com/parleychat/parley/domain/chat"
)

// historyResult is the connect-to-history figure.
type historyResult struct {
	chunks     int // AnswerChunk events in the room
	frameBytes int
	gateway    []time.Duration // sorted
	baseline   []time.Duration // sorted
}

// benchHistory fills a room with historyTurns questions and answers, waits
// for the ChatLog to catch up, and times dial → history frame against the
// persisted stack's gateway and against a bare server sending a frame of
// the same bytes, alternating one connect each.
func benchHistory(ctx context.Context, env *chatEnv, c chatConfig, s *chatStack) (historyResult, error) {
	var res historyResult
	id, chunks, err := env.fillRoom(ctx, "history-owner")
	if err != nil {
		return res, err
	}
	res.chunks = chunks
	if err := env.caughtUp(ctx, s); err != nil {
		return res, err
	}
	tok, err := env.token("history-owner")
	if err != nil {
		return res, err
	}
	url := s.base + strconv.FormatInt(id, 10) + "/"

	connect := func(url string) (time.Duration, []byte, error) {
		t0 := time.Now()
		ws, err := dial(ctx, url, tok)
		if err != nil {
			return 0, nil, err
		}
		defer ws.Close()
		data, err := readFirst(ws, 30*time.Second)
		return time.Since(t0), data, err
	}
	var frame []byte
	for range 5 { // warm-up, and the frame the baseline sends
		if _, frame, err = connect(url); err != nil {
			return res, err
		}
	}
	var h struct {
		Type     string            `json:"type"`
		Messages []json.RawMessage `json:"messages"`
	}
	// chatd caps the frame: users get the newest messages of a long room.
	want := min(2*historyTurns, wsapi.DefaultHistoryMessages)
	if err := json.Unmarshal(frame, &h); err != nil || h.Type != "history" || len(h.Messages) != want {
		return res, fmt.Errorf("the room's first frame is not a history of %d messages (%d, %v): %.100s", want, len(h.Messages), err, frame)
	}
	res.frameBytes = len(frame)
	bare, err := env.newBareServer(frame)
	if err != nil {
		return res, err
	}
	defer bare.stop()
	for range 5 {
		if _, _, err := connect(bare.url); err != nil {
			return res, err
		}
	}
	env.logf("history: %d connects per side", c.dials)
	for i := range c.dials {
		for k := range 2 {
			if (i+k)%2 == 0 {
				d, data, err := connect(url)
				if err != nil {
					return res, fmt.Errorf("gateway: %w", err)
				}
				if len(data) != len(frame) {
					return res, fmt.Errorf("gateway: history frame of %d bytes, want %d", len(data), len(frame))
				}
				res.gateway = append(res.gateway, d)
			} else {
				d, _, err := connect(bare.url)
				if err != nil {
					return res, fmt.Errorf("baseline: %w", err)
				}
				res.baseline = append(res.baseline, d)
			}
		}
	}
	slices.Sort(res.gateway)
	slices.Sort(res.baseline)
	return res, nil
}

// fillRoom creates a room owned by owner in the Postgres store and has a
// Service with an unpaced scripted generator answer historyTurns
// questions in it, one after the other. It returns the room and how many
// chunks its answers have.
func (e *chatEnv) fillRoom(ctx context.Context, owner string) (int64, int, error) {
	gen, err := offline.NewScripted(offline.ScriptedConfig{Text: benchAnswer})
	if err != nil {
		return 0, 0, err
	}
	svc := chat.NewService(chat.Config{Instance: "bench-filler"}, chat.Deps{Store: e.pg, Generator: gen, Now: time.Now, Random: rand.Reader})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	defer func() { stop(); <-done }()

	info, err := svc.CreateRoom(ctx, owner, "History")
	if err != nil {
		return 0, 0, err
	}
	e.logf("history: filling a room with %d questions and answers", historyTurns)
	for i := range historyTurns {
		if _, err := svc.Post(ctx, info.ID, owner, benchQuestion, "h-"+strconv.Itoa(i)); err != nil {
			return 0, 0, err
		}
		for {
			r, err := svc.Room(ctx, info.ID, owner)
			if err != nil {
				return 0, 0, err
			}
			if !r.Streaming {
				break
			}
			if err := sleepCtx(ctx, time.Millisecond); err != nil {
				return 0, 0, err
			}
		}
	}
	return info.ID, historyTurns * len(offline.SplitTokens(benchAnswer)), nil
}
