package projectiontest

import (
	"context"
	"sync"
	"testing"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room/roomgen"
)

// Writers keep appending generated rooms to a store, as chatd's users
// would, until Stop.
//
// A test that compares read models after writers stop must know that no
// append is still on its way: an append whose context is cancelled while
// it is in flight may still commit after the writer gave up on it, after
// the test looked at the log's head, and be missing from the read model
// when the test compares. So the writers' appends never get a context
// that Stop cancels: Stop stops them from starting new appends and waits
// for those in flight to return, committed or failed. After Stop the log
// holds all it will ever get from them.
type Writers struct {
	stop chan struct{}
	wg   sync.WaitGroup

	mu     sync.Mutex
	err    error
	rounds int
	once   sync.Once
}

// WriterRound is how many rooms one round of the writers appends, in two
// goroutines, each with two rooms conversing at once.
const WriterRound = 5

// StartWriters starts appending rounds of WriterRound generated rooms to
// store, numbered from firstRoom on, each round seeded from seed. They
// stop at Stop, or when the test ends.
func StartWriters(t testing.TB, store domain.Appender, firstRoom int64, seed uint64) *Writers {
	w := &Writers{stop: make(chan struct{})}
	w.wg.Go(func() {
		for round := 0; ; round++ {
			select {
			case <-w.stop:
				return
			default:
			}
			rooms, _ := roomgen.Generate(roomgen.Config{Rooms: WriterRound, FirstRoom: firstRoom + int64(WriterRound*round), Seed: seed + uint64(round)})
			// Not the test's context: an append in flight returns before Stop does.
			if _, err := roomgen.Write(context.Background(), store, rooms, 2, 2, nil); err != nil {
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
				return
			}
			w.mu.Lock()
			w.rounds++
			w.mu.Unlock()
		}
	})
	t.Cleanup(func() { _ = w.Stop() })
	return w
}

// Stop stops the writers from starting new appends, waits for the appends
// in flight to return and returns the first append's error.
func (w *Writers) Stop() error {
	w.once.Do(func() { close(w.stop) })
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Rounds counts the rounds written in full so far.
func (w *Writers) Rounds() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rounds
}
