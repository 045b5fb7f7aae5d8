package audit_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/parleychat/parley/adapters/inmem"
	"github.com/parleychat/parley/domain/audit"
	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/room"
)

// wordsGenerator streams n words, pausing between them.
type wordsGenerator struct {
	n     int
	pause time.Duration
}

func (g wordsGenerator) Name() string { return "test/words" }

func (g wordsGenerator) Generate(ctx context.Context, _ chat.Prompt, emit func(string) error) error {
	for i := range g.n {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(g.pause):
		}
		if err := emit(fmt.Sprintf("word%d ", i)); err != nil {
			return err
		}
	}
	return nil
}

// TestChatServiceOverTheChain runs the chat service over the chain store:
// posts answered in full, and cancels racing the answers' own endings,
// leave intact chains.
func TestChatServiceOverTheChain(t *testing.T) {
	inner := inmem.New(nil)
	svc := chat.NewService(chat.Config{}, chat.Deps{
		Store: audit.NewChainingStore(inner, audit.ChainOptions{}), Generator: wordsGenerator{n: 20, pause: time.Millisecond},
		Now: time.Now, Random: rand.Reader,
	})
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })

	info, err := svc.CreateRoom(t.Context(), "u1", "chained")
	if err != nil {
		t.Fatal(err)
	}
	waitIdle := func() {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			ri, err := svc.Room(t.Context(), info.ID, "u1")
			if err != nil {
				t.Fatal(err)
			}
			if !ri.Streaming {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("the answer did not end within 30s")
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	for i := range 6 {
		if _, err := svc.Post(t.Context(), info.ID, "u1", fmt.Sprintf("question %d", i), fmt.Sprint("c", i)); err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 {
			time.Sleep(time.Duration(i) * 3 * time.Millisecond)
			if err := svc.Cancel(t.Context(), info.ID, "u1"); err != nil && !errors.Is(err, room.ErrNoAnswer) {
				t.Logf("cancel: %v", err)
			}
		}
		waitIdle()
	}
	res, err := audit.VerifyStream(t.Context(), inner, room.Stream(info.ID))
	if err != nil || !res.OK() || res.Unchained != 0 || res.Events < 6*4 {
		t.Errorf("VerifyStream = %+v, %v; want an intact chained room", res, err)
	}
}
