package chat

import (
	"context"

	"github.com/parleychat/parley/domain"

	"github.com/parleychat/parley/domain/memory"
	"github.com/parleychat/parley/domain/room"
)

// Memory keeps rooms' conversation memory short: after an answer
// completes, Summarize decides the summary that folds the room's oldest
// turns while the rest exceed the memory's token limit (memory.Worker),
// and the service appends it (ok false: nothing to fold).
type Memory interface {
	Summarize(ctx context.Context, roomID int64) (ev room.SummaryUpdated, ok bool, err error)
}

// MemoryReader reads a room's memory, as a read model holds it, for the
// user who owns the room.
type MemoryReader interface {
	// Load returns the summary and the turns after it, and the stream
	// version the read model has applied (domain.NoVersion when it knows
	// nothing of the room).
	Load(ctx context.Context, roomID int64, user string) (*memory.Conversation, error)
}

// readMemory loads the room's memory within MemoryReadTimeout, or returns
// nil (the prompt then takes its memory from the stream) when there is no
// reader or it fails: a memory outage degrades prompts, never answers.
func (s *Service) readMemory(ctx context.Context, id int64, user string) *memory.Conversation {
	if s.reader == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.MemoryReadTimeout)
	defer cancel()
	m, err := s.reader.Load(ctx, id, user)
	if err != nil {
		if log, n := s.memOutage.failed(s.now()); log {
			s.log.Warn("memory: read model unavailable; prompts take their memory from the room's stream until it is back",
				"room_id", id, "error", err, "failures_not_logged", n, "next_warning_in", outageLogEvery)
		}
		return nil
	}
	if back, n := s.memOutage.ok(); back {
		s.log.Info("memory: read model available again", "failures_not_logged", n)
	}
	return m
}

// promptMemory returns the summary and the verbatim turns of a prompt. The
// read model m is used when it holds the stream's latest summary: its
// turns, then the messages of st it has not applied yet (it may lag the
// stream by a few events). Otherwise, and when m is nil, both come from
// st: its summary and the messages of Recent after it.
func promptMemory(st *room.State, m *memory.Conversation) (string, []Turn) {
	var history []Turn
	if m == nil || m.Deleted || m.Through != st.SummaryThrough || m.Version > st.Version {
		for _, t := range st.Buffer() {
			history = append(history, Turn{Role: t.Role, Content: t.Text})
		}
		return st.Summary, history
	}
	for _, t := range m.Turns {
		history = append(history, Turn{Role: RoleUser, Content: t.Question})
		if t.Answer != "" {
			history = append(history, Turn{Role: RoleAssistant, Content: t.Answer})
		}
	}
	for _, t := range st.Recent {
		if t.Version > m.Version {
			history = append(history, Turn{Role: t.Role, Content: t.Text})
		}
	}
	return m.Summary, history
}

// compact summarises the room's oldest turns (Memory.Summarize) in a
// goroutine the Service owns, off the answers' path, one at a time per
// room: a request while one runs makes it run once more. The summary is
// then appended where it cannot conflict with the room's answer: by the
// answer streaming in the room, if this process runs one (after its next
// chunk, or before its end), else at the room's version under its lock.
func (s *Service) compact(id int64) {
	if s.memory == nil {
		return
	}
	s.mu.Lock()
	if _, running := s.compacting[id]; running {
		s.compacting[id] = true
		s.mu.Unlock()
		return
	}
	s.compacting[id] = false
	s.mu.Unlock()
	s.answers.Go(func() {
		for {
			ctx, cancel := context.WithTimeout(s.ctx, s.cfg.CompactTimeout)
			err := s.summarize(ctx, id)
			cancel()
			if err != nil && s.ctx.Err() == nil {
				s.log.Warn("memory: could not summarise the room's oldest turns; the next answer tries again", "room_id", id, "error", err)
			}
			s.mu.Lock()
			again := s.compacting[id] && s.ctx.Err() == nil
			if !again {
				delete(s.compacting, id)
			} else {
				s.compacting[id] = false
			}
			s.mu.Unlock()
			if !again {
				return
			}
		}
	})
}

// summarize decides the room's next summary and has it appended.
func (s *Service) summarize(ctx context.Context, id int64) error {
	ev, ok, err := s.memory.Summarize(ctx, id)
	if err != nil || !ok {
		return err
	}
	s.mu.Lock()
	if ra := s.running[id]; ra != nil && !ra.ending {
		ra.summary = &ev // the answer appends it (pipeline.appendSummary)
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	stream := room.Stream(id)
	evs, res, err := s.execute(ctx, id, domain.Metadata{}, func(int, room.Event) domain.UUID {
		return memory.SummaryEventID(stream, ev.CoversThroughVersion)
	}, func(st *room.State) ([]room.Event, error) {
		if !st.Exists() || st.SummaryThrough >= ev.CoversThroughVersion {
			return nil, nil // deleted, or summarised that far already
		}
		return []room.Event{ev}, nil
	})
	if err != nil {
		return err
	}
	if len(evs) > 0 {
		s.logSummary(id, ev, res.Version)
	}
	return nil
}

func (s *Service) logSummary(id int64, ev room.SummaryUpdated, version int64) {
	s.log.Info("summarised the oldest turns", "room_id", id, "covers_through_version", ev.CoversThroughVersion,
		"tokens", ev.Tokens, "summarizer", ev.Summarizer, "version", version)
}
