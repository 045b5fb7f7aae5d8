// Package roomgen generates realistic room histories for tests and
// benchmarks of whatever reads the log: rooms created, questions posted,
// answers streamed in many chunks and completed, failed, cancelled or
// left open, rooms deleted (some while an answer streams), appended the
// way chatd appends them (chunks group-committed) with many rooms
// conversing at once. The same seed gives the same events.
package roomgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

// Config shapes a history. Zero fields take the documented defaults.
type Config struct {
	// Rooms is how many rooms to generate. Default 100.
	Rooms int
	// Events, when positive, overrides Rooms: rooms are generated until
	// there are at least this many events.
	Events int
	// FirstRoom is the first room's id; the others follow. Default 1.
	FirstRoom int64
	// Questions is the mean number of questions per room (0 to twice
	// this many). Default 3.
	Questions int
	// Chunks is the mean number of deltas per answer (half to one and a
	// half times this many), carried by chunks of one delta or, a quarter
	// of them, of 2 to 4. Default 30.
	Chunks int
	// GroupSize caps the events of one append: it stands for the group
	// commit that writes many rooms' appends in one transaction. Default 16.
	GroupSize int
	// Seed selects the history.
	Seed uint64
}

func (c *Config) setDefaults() {
	if c.Rooms <= 0 {
		c.Rooms = 100
	}
	if c.FirstRoom <= 0 {
		c.FirstRoom = 1
	}
	if c.Questions <= 0 {
		c.Questions = 3
	}
	if c.Chunks <= 0 {
		c.Chunks = 30
	}
	if c.GroupSize <= 0 {
		c.GroupSize = 16
	}
}

// Room is one room's history as the appends that write it, in order.
type Room struct {
	ID      int64
	Appends [][]domain.EventData
}

// Events counts the room's events.
func (r Room) Events() int {
	n := 0
	for _, a := range r.Appends {
		n += len(a)
	}
	return n
}

// Stats counts what a history holds.
type Stats struct {
	Rooms, Events, Appends                      int
	Questions, Chunks                           int
	Completed, Failed, Cancelled, Open, Deleted int
}

// Generate returns the rooms of cfg's history and what they hold.
func Generate(cfg Config) ([]Room, Stats) {
	cfg.setDefaults()
	g := &gen{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x7061726c6579)), ids: rand.NewChaCha8(seed32(cfg.Seed))}
	var rooms []Room
	for i := 0; ; i++ {
		if cfg.Events > 0 && g.st.Events >= cfg.Events || cfg.Events <= 0 && i >= cfg.Rooms {
			break
		}
		rooms = append(rooms, g.room(cfg.FirstRoom+int64(i)))
	}
	g.st.Rooms = len(rooms)
	return rooms, g.st
}

func seed32(s uint64) [32]byte {
	var b [32]byte
	for i := range 8 {
		b[i] = byte(s >> (8 * i))
	}
	copy(b[8:], "parley roomgen seed")
	return b
}

type gen struct {
	cfg Config
	rng *rand.Rand
	ids *rand.ChaCha8
	st  Stats
}

// words are what answers are made of: English and Hangul, as in Parley's
// documents, with punctuation and the odd escape-worthy character.
var words = strings.Fields(`The youth housing allowance covers up to 200,000 won a month for renters
	aged 19 to 34 whose household income is below the median. Apply at the community centre
	or online; bring your lease, "proof of income" and ID. 청년 월세 지원은 월 최대 20만 원이며
	신청은 주민센터 또는 온라인으로 가능합니다. Payments start the month after approval — usually
	within 30 days. Students living in dormitories are not eligible; see §3(b) of the policy.`)

func (g *gen) uuid() domain.UUID {
	id, err := domain.NewUUID(g.ids)
	if err != nil {
		panic(err) // ChaCha8 never fails to read
	}
	return id
}

func (g *gen) text(minWords, maxWords int) string {
	n := minWords + g.rng.IntN(maxWords-minWords+1)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = words[g.rng.IntN(len(words))]
	}
	return strings.Join(parts, " ")
}

// room generates one room: created; questions, each answered in chunks
// and ended; perhaps deleted, perhaps while an answer streams.
func (g *gen) room(id int64) Room {
	r := Room{ID: id}
	owner := fmt.Sprintf("user-%d", g.rng.IntN(max(1, g.cfg.Rooms/5))+1)
	var group []domain.EventData
	add := func(e room.Event, user string) {
		meta := domain.Metadata{CorrelationID: g.uuid().String(), UserID: user, OccurredAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(g.st.Events) * time.Millisecond)}
		ev, err := room.EncodeEvent(g.uuid(), e, meta)
		if err != nil {
			panic(err) // room events always encode
		}
		group = append(group, ev)
		g.st.Events++
	}
	flush := func() {
		if len(group) > 0 {
			r.Appends = append(r.Appends, group)
			g.st.Appends++
			group = nil
		}
	}
	add(room.RoomCreated{RoomID: id, OwnerID: owner, Title: g.text(1, 5)}, owner)
	flush()

	deleted := g.rng.IntN(100) < 5
	questions := g.rng.IntN(2*g.cfg.Questions + 1)
	for q := range questions {
		last := q == questions-1
		msg, ans := g.uuid(), g.uuid()
		posted := room.MessagePosted{MessageID: msg, UserID: owner, Text: g.text(3, 25) + "?"}
		if g.rng.IntN(2) == 0 {
			posted.ClientID = fmt.Sprintf("c-%d-%d", id, q)
		}
		add(posted, owner)
		add(room.AnswerStarted{AnswerID: ans, QuestionID: msg, Model: "ollama/llama3.1:8b", Instance: "chatd-1"}, "")
		flush()
		g.st.Questions++

		chunks := g.cfg.Chunks/2 + g.rng.IntN(g.cfg.Chunks+1)
		end := g.rng.IntN(100)
		// Deleting a room cancels its open answer (room.Delete), so a deleted
		// room never ends with one left streaming.
		deleteNow := deleted && last && (end < 50 || end >= 97)
		switch {
		case deleteNow, end >= 97: // deleted or left streaming midway
			chunks /= 2
		case end >= 85: // failed or cancelled early
			chunks = g.rng.IntN(chunks + 1)
		}
		var text strings.Builder
		for c := 0; c < chunks; {
			// Most chunks carry one delta; a quarter carry those that came
			// while the one before was being appended (2 to 4).
			n := 1
			if g.rng.IntN(4) == 0 {
				n = min(2+g.rng.IntN(3), chunks-c)
			}
			ds, at := make([]string, n), make([]time.Time, n)
			for i := range ds {
				ds[i] = words[g.rng.IntN(len(words))] + " "
				at[i] = time.Unix(0, int64(i)*int64(20*time.Millisecond))
				text.WriteString(ds[i])
			}
			add(room.NewAnswerChunk(ans, c, ds, at), "")
			c += n
			if len(group) >= g.cfg.GroupSize {
				flush()
			}
		}
		switch {
		case deleteNow:
			flush() // the delete is its own command
			add(room.AnswerCancelled{AnswerID: ans, Reason: room.ReasonRoomDeleted, By: owner, Text: text.String()}, owner)
			g.st.Cancelled++
		case end >= 97:
			if last {
				g.st.Open++
				break
			}
			// A restart found it open and failed it.
			add(room.AnswerFailed{AnswerID: ans, Reason: room.ReasonInterrupted, Text: text.String()}, "")
			g.st.Failed++
		case end >= 92:
			flush() // the cancel is its own command
			add(room.AnswerCancelled{AnswerID: ans, Reason: room.ReasonCancelled, By: owner, Text: text.String()}, owner)
			g.st.Cancelled++
		case end >= 85:
			reason := []string{room.ReasonGeneratorError, room.ReasonTimeout, room.ReasonShutdown}[g.rng.IntN(3)]
			add(room.AnswerFailed{AnswerID: ans, Reason: reason, Text: text.String()}, "")
			g.st.Failed++
		default:
			var sources []room.Source
			for s := range g.rng.IntN(4) {
				sources = append(sources, room.Source{
					Document: fmt.Sprintf("policy-%d.pdf", g.rng.IntN(50)), ChunkID: fmt.Sprintf("p%d-c%d", g.rng.IntN(40), s),
					Score: float64(g.rng.IntN(1000)) / 1000, Snippet: g.text(5, 20),
				})
			}
			if sources == nil && g.rng.IntN(2) == 0 {
				sources = []room.Source{} // as chat.Service writes it
			}
			add(room.AnswerCompleted{AnswerID: ans, Text: text.String(), Sources: sources, Chunks: chunks}, "")
			g.st.Completed++
		}
		g.st.Chunks += chunks
		if deleteNow {
			break
		}
		flush()
	}
	if deleted {
		add(room.RoomDeleted{RoomID: id, DeletedBy: owner}, owner)
		g.st.Deleted++
	}
	flush()
	return r
}

// Write appends rooms to app with writers goroutines, each keeping active
// rooms conversing at once and appending one group of each in turn, so
// that the rooms' events interleave in the global log as concurrent
// conversations do. Each append expects the room's exact version. It
// returns the number of events written; progress, when set, is called
// with it now and then, from the writers' goroutines.
func Write(ctx context.Context, app domain.Appender, rooms []Room, writers, active int, progress func(events int64)) (int64, error) {
	writers, active = max(writers, 1), max(active, 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		total    int64
		firstErr error
		wg       sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			type cursor struct {
				r       Room
				next    int
				version int64
			}
			var mine []Room
			for i := w; i < len(rooms); i += writers {
				mine = append(mine, rooms[i])
			}
			var live []*cursor
			for len(mine) > 0 || len(live) > 0 {
				for len(live) < active && len(mine) > 0 {
					live = append(live, &cursor{r: mine[0], version: domain.NoVersion})
					mine = mine[1:]
				}
				kept := live[:0]
				var n int64
				for _, c := range live {
					evs := c.r.Appends[c.next]
					res, err := app.Append(ctx, room.Stream(c.r.ID), domain.Exact(c.version), evs...)
					if err != nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = fmt.Errorf("roomgen: append %d events to room %d at version %d: %w", len(evs), c.r.ID, c.version, err)
						}
						mu.Unlock()
						cancel()
						return
					}
					c.version, c.next = res.Version, c.next+1
					n += int64(len(evs))
					if c.next < len(c.r.Appends) {
						kept = append(kept, c)
					}
				}
				live = kept
				mu.Lock()
				total += n
				t := total
				mu.Unlock()
				if progress != nil {
					progress(t)
				}
			}
		})
	}
	wg.Wait()
	return total, firstErr
}
