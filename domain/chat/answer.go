package chat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/memory"
	"github.com/parleychat/parley/domain/room"
)

// Answer outcomes, for Metrics.
const (
	OutcomeComplete  = "complete"
	OutcomeFailed    = "failed"
	OutcomeCancelled = "cancelled"
	OutcomeAbandoned = "abandoned" // another writer ended it first
)

// appendTimeout bounds one append of the pipeline. Appends do not use the
// generation's context: a shutdown must still write the chunks it has and
// the terminal event.
const appendTimeout = 10 * time.Second

// errAbandoned: the answer is no longer open in the stream (cancelled,
// deleted, or ended by another process); stop without writing.
var errAbandoned = errors.New("answer no longer open")

// errRewound: the stream is shorter than the pipeline's appends left it
// (a database crash lost its last unflushed commits); what the pipeline
// was writing must be built again from the log.
var errRewound = errors.New("the log lost events of this answer")

// startAnswer runs the answer pipeline in a goroutine the Service owns.
func (s *Service) startAnswer(id int64, user string, msgID, answerID domain.UUID, version int64, prompt Prompt) {
	genCtx, cancel := context.WithTimeout(s.ctx, s.cfg.AnswerTimeout)
	ra := &runningAnswer{id: answerID, cancel: cancel}
	s.mu.Lock()
	s.running[id] = ra
	s.mu.Unlock()
	s.answers.Go(func() {
		defer func() {
			cancel()
			s.mu.Lock()
			if s.running[id] == ra {
				delete(s.running, id)
			}
			ra.ending = true
			lost := ra.summary != nil // handed over after the answer's last chance to append it
			ra.summary = nil
			s.mu.Unlock()
			if lost {
				s.compact(id) // decide it again, and append it on its own
			}
		}()
		p := &pipeline{s: s, room: id, user: user, msgID: msgID, answerID: answerID, version: version, ra: ra}
		outcome := p.run(genCtx, cancel, prompt)
		if s.metrics != nil {
			s.metrics.ObserveAnswer(outcome, time.Since(p.started))
		}
	})
}

// pipeline streams one answer into the room's stream: generator deltas
// become AnswerChunk events, several to an event while an append is in
// flight (group commit) or when they come fast (Config.ChunkWindow), then
// exactly one terminal event.
type pipeline struct {
	s        *Service
	room     int64
	user     string
	msgID    domain.UUID
	answerID domain.UUID
	version  int64 // the stream version our next append expects
	ra       *runningAnswer
	started  time.Time
	seq      int
	text     strings.Builder
}

func (p *pipeline) run(genCtx context.Context, stopGen context.CancelFunc, prompt Prompt) string {
	p.started = time.Now()
	g := p.ground(genCtx, prompt)
	srcs := g.sources
	appendErr, genErr := p.generate(genCtx, stopGen, g)

	switch {
	case errors.Is(appendErr, errAbandoned):
		return OutcomeAbandoned
	case p.ra.cancelled:
		return OutcomeCancelled // the Cancel command wrote AnswerCancelled
	}
	var end room.Event
	outcome := OutcomeFailed
	switch {
	case appendErr != nil:
		p.s.log.Error("answer: appending chunks failed", "room_id", p.room, "answer_id", p.answerID, "error", appendErr)
		end = room.AnswerFailed{AnswerID: p.answerID, Reason: room.ReasonGeneratorError, Text: p.text.String()}
	case genErr == nil:
		outcome = OutcomeComplete
		end = room.AnswerCompleted{AnswerID: p.answerID, Text: p.text.String(), Sources: srcs, Chunks: p.seq}
	case p.s.ctx.Err() != nil:
		end = room.AnswerFailed{AnswerID: p.answerID, Reason: room.ReasonShutdown, Text: p.text.String()}
	case errors.Is(genErr, context.DeadlineExceeded):
		end = room.AnswerFailed{AnswerID: p.answerID, Reason: room.ReasonTimeout, Text: p.text.String()}
	default:
		p.s.log.Warn("answer: generator failed", "room_id", p.room, "answer_id", p.answerID, "error", genErr)
		end = room.AnswerFailed{AnswerID: p.answerID, Reason: room.ReasonGeneratorError, Text: p.text.String()}
	}
	// The summary the answer holds goes before its end, once: a failure
	// leaves it to the next compaction.
	if err := p.appendSummary(true); err != nil && !errors.Is(err, errAbandoned) {
		p.s.log.Warn("memory: could not append the room's summary", "room_id", p.room, "error", err)
	}
	if err := p.end(end); err != nil {
		if errors.Is(err, errAbandoned) {
			return OutcomeAbandoned
		}
		p.s.log.Error("answer: could not write its end; the sweeper fails it once the store is back", "room_id", p.room, "answer_id", p.answerID, "error", err)
	} else if outcome == OutcomeComplete {
		p.s.compact(p.room)
	}
	return outcome
}

// grounding is what retrieval gave an answer: the prompt for the
// generator, the answer's sources (never nil), and what to append before
// its first chunk — the RetrievalRecorded event, and a notice when
// retrieval failed.
type grounding struct {
	prompt  Prompt
	sources []room.Source
	record  *room.RetrievalRecorded
	notice  string
}

// ground retrieves the passages for the question and puts them in the
// prompt. Without a Retriever it changes nothing and records nothing. When
// retrieval fails (the Retriever bounds its time), the answer goes ahead
// without documents and its first chunk says so.
func (p *pipeline) ground(ctx context.Context, prompt Prompt) grounding {
	g := grounding{prompt: prompt, sources: []room.Source{}}
	if p.s.ret == nil {
		return g
	}
	r, err := p.s.ret.Retrieve(ctx, prompt.Question)
	if ctx.Err() != nil {
		// Cancelled, shut down or out of time while retrieving: the
		// generator stops at once and the answer ends as it says.
		return g
	}
	rec := room.RetrievalRecorded{AnswerID: p.answerID, Query: prompt.Question, Embedder: r.Embedder, Index: r.Index, Model: p.s.gen.Name(),
		Rewrite: r.Rewrite, Retrievers: r.Retrievers, Fused: r.Fused}
	if err != nil {
		if log, n := p.s.retOutage.failed(p.s.now()); log {
			p.s.log.Warn("answer: retrieval failed; answering without documents until it works again",
				"room_id", p.room, "answer_id", p.answerID, "error", err, "failures_not_logged", n, "next_warning_in", outageLogEvery)
		}
		r.Passages = nil
		rec.Error = err.Error()
		g.notice = noSourcesNotice(prompt.Question)
	}
	if err == nil {
		if back, n := p.s.retOutage.ok(); back {
			p.s.log.Info("answer: retrieval works again", "failures_not_logged", n)
		}
	}
	g.prompt.Context = r.Passages
	rec.Hits = hits(r.Passages)
	rec.PromptHash = PromptHash(g.prompt)
	g.record, g.sources = &rec, sources(r.Passages)
	return g
}

// emitted is a delta and when the generator emitted it.
type emitted struct {
	text string
	at   time.Time
}

// generate starts the generator, appends the grounding's record (and
// notice), then streams the generator's deltas into AnswerChunk events:
// the deltas that arrived while the previous append was in flight, and
// those a fast generator emits within Config.ChunkWindow, go out together
// in one event. It returns the first append error and the generator's
// error.
func (p *pipeline) generate(genCtx context.Context, stopGen context.CancelFunc, g grounding) (appendErr, genErr error) {
	deltas := make(chan emitted, 1024)
	genDone := make(chan error, 1)
	go func() { // owned here: generate waits for genDone below
		err := p.s.gen.Generate(genCtx, g.prompt, func(d string) error {
			if d == "" {
				return nil
			}
			select {
			case deltas <- emitted{text: d, at: p.s.now()}:
				return nil
			case <-genCtx.Done():
				return genCtx.Err()
			}
		})
		close(deltas)
		genDone <- err
	}()

	// The retrieval record goes before the first chunk, appended while the
	// model works on its first token rather than before asking it.
	if g.record != nil {
		appendErr = p.append([]room.Event{*g.record})
	}
	if appendErr == nil && g.notice != "" {
		appendErr = p.appendChunks([]emitted{{text: g.notice, at: p.s.now()}})
	}
	if appendErr != nil {
		stopGen()
	}
	var prev time.Time // when the delta before the batch's first came
	batch := make([]emitted, 0, 16)
	var carried *emitted // a delta that did not fit the last batch
	for open := true; open || carried != nil; {
		var first emitted
		if carried != nil {
			first, carried = *carried, nil
		} else {
			d, ok := <-deltas
			if !ok {
				break
			}
			first = d
		}
		batch = append(batch[:0], first)
		if open {
			carried, open = p.gather(deltas, &batch, prev)
		}
		prev = batch[len(batch)-1].at
		if appendErr == nil {
			if appendErr = p.appendChunks(batch); appendErr != nil {
				stopGen()
			}
		}
	}
	for range deltas { // drain until the generator has stopped
	}
	return appendErr, <-genDone
}

// gather adds to batch the deltas already waiting, and, while the
// generator emits faster than ChunkWindow (a delta within it of the one
// before), those arriving until ChunkWindow after the batch's first, up to
// MaxChunkBatch deltas and MaxChunkBytes of text. A delta that does not
// fit is returned, to start the next batch. It reports false once deltas
// is closed.
func (p *pipeline) gather(deltas <-chan emitted, batch *[]emitted, prev time.Time) (next *emitted, open bool) {
	limit, window := p.s.cfg.MaxChunkBatch, p.s.cfg.ChunkWindow
	size := len((*batch)[0].text)
	add := func(d emitted) bool {
		if size+len(d.text) > p.s.cfg.MaxChunkBytes {
			return false
		}
		size += len(d.text)
		*batch = append(*batch, d)
		return true
	}
	for len(*batch) < limit {
		select {
		case d, ok := <-deltas:
			if !ok {
				return nil, false
			}
			if !add(d) {
				return &d, true
			}
			continue
		default:
		}
		b := *batch
		last, before := b[len(b)-1].at, prev
		if len(b) > 1 {
			before = b[len(b)-2].at
		}
		if window <= 0 || before.IsZero() || last.Sub(before) >= window {
			return nil, true // the generator is not emitting faster than the window
		}
		wait := b[0].at.Add(window).Sub(p.s.now())
		if wait <= 0 {
			return nil, true
		}
		t := time.NewTimer(wait)
		select {
		case d, ok := <-deltas:
			t.Stop()
			if !ok {
				return nil, false
			}
			if !add(d) {
				return &d, true
			}
		case <-t.C:
			return nil, true
		}
	}
	return nil, true
}

// appendChunks appends the batch's deltas as one AnswerChunk.
func (p *pipeline) appendChunks(batch []emitted) error {
	texts := make([]string, len(batch))
	at := make([]time.Time, len(batch))
	for i, d := range batch {
		texts[i], at[i] = d.text, d.at
	}
	if err := p.append([]room.Event{room.NewAnswerChunk(p.answerID, p.seq, texts, at)}); err != nil {
		return err
	}
	p.seq += len(batch)
	for _, t := range texts {
		p.text.WriteString(t)
	}
	if err := p.appendSummary(false); err != nil {
		if errors.Is(err, errAbandoned) {
			return err
		}
		p.s.log.Warn("memory: could not append the room's summary", "room_id", p.room, "error", err)
	}
	return nil
}

// append writes evs at the pipeline's version, each append within
// appendTimeout. On a conflict it reloads the room (reload): if the answer
// is still open it appends again after the new tail, otherwise it reports
// errAbandoned. A retry after a lost acknowledgement is safe: the events'
// IDs are derived, so the store answers it with the original result.
func (p *pipeline) append(evs []room.Event) error {
	data, err := p.s.encode(evs, domain.Metadata{CorrelationID: p.msgID.String(), CausationID: p.answerID.String(), UserID: p.user},
		func(_ int, e room.Event) domain.UUID { return eventID(e) })
	if err != nil {
		return err
	}
	return p.appendData(data, len(evs))
}

// appendSummary appends the summary the Service has handed the answer, if
// any (see Service.summarize), at the answer's version: nothing else
// appends to the room meanwhile, so it cannot conflict. ending says the
// answer takes no more: a summary decided later is appended on its own.
func (p *pipeline) appendSummary(ending bool) error {
	p.s.mu.Lock()
	ev := p.ra.summary
	p.ra.summary = nil
	if ending {
		p.ra.ending = true
	}
	p.s.mu.Unlock()
	if ev == nil {
		return nil
	}
	data, err := p.s.encode([]room.Event{*ev}, domain.Metadata{}, func(int, room.Event) domain.UUID {
		return memory.SummaryEventID(room.Stream(p.room), ev.CoversThroughVersion)
	})
	if err != nil {
		return err
	}
	if err := p.appendData(data, 1); err != nil {
		return err
	}
	p.s.logSummary(p.room, *ev, p.version)
	return nil
}

// appendData appends encoded events (n room events) at the pipeline's
// version, each append within appendTimeout (see append).
func (p *pipeline) appendData(data []domain.EventData, n int) error {
	var reloadErr error
	res, err := domain.AppendDecided(context.Background(), timedAppender{s: p.s, timeout: appendTimeout}, room.Stream(p.room), maxAppendAttempts,
		func(_ context.Context, conflict error) ([]domain.EventData, domain.ExpectedVersion, error) {
			if conflict != nil {
				v, err := p.reload(conflict, n)
				if err != nil {
					reloadErr = err
					return nil, domain.Any(), err
				}
				p.version = v
			}
			return data, domain.Exact(p.version), nil
		})
	switch {
	case err != nil && err == reloadErr:
		return err
	case err != nil:
		return fmt.Errorf("room %d: append %d answer events: %w", p.room, n, err)
	}
	p.version = res.Version
	return nil
}

// reload reads the room after an append of n events conflicted and
// returns the version to append at: the stream's, while the answer is
// still open; errAbandoned once it is not; errRewound when the log lost
// events this pipeline had appended (what it was about to write was built
// on them).
func (p *pipeline) reload(conflict error, n int) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
	defer cancel()
	r := p.s.lock(p.room)
	defer p.s.unlock(r)
	if rewound(r, conflict) {
		return 0, fmt.Errorf("room %d: append %d answer events: %w", p.room, n, errRewound)
	}
	st, err := p.s.refresh(ctx, p.room, r)
	if err != nil {
		return 0, err
	}
	if st.Open == nil || st.Open.AnswerID != p.answerID {
		return 0, errAbandoned
	}
	return st.Version, nil
}

// Backoff of the retries of an answer's terminal event.
const (
	endRetryMin = 100 * time.Millisecond
	endRetryMax = 5 * time.Second
)

// end writes the answer's terminal event. While the store fails (a
// database outage) it retries with backoff until AnswerTimeout plus
// EndGrace after the answer started, or until Run stops the retries at
// shutdown: an outage of the store must not leave the room busy once the
// store is back. Input the store refuses is not retried.
func (p *pipeline) end(end room.Event) error {
	deadline := p.started.Add(p.s.cfg.AnswerTimeout + p.s.cfg.EndGrace)
	wait := endRetryMin
	for attempt := 1; ; attempt++ {
		err := p.logged(&end)
		if err == nil {
			err = p.append([]room.Event{end})
		}
		switch domain.ErrorCode(err) {
		case "":
			if attempt > 1 {
				p.s.log.Info("answer: wrote its end after retrying", "room_id", p.room, "answer_id", p.answerID, "attempts", attempt)
			}
			return nil
		case domain.EINVALID, domain.ETOOLARGE:
			return err
		}
		if errors.Is(err, errAbandoned) {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return err
		}
		if attempt == 1 {
			p.s.log.Warn("answer: could not write its end; retrying with backoff", "room_id", p.room, "answer_id", p.answerID,
				"error", err, "retry_for", left.Round(time.Second))
		}
		t := time.NewTimer(min(wait, left))
		select {
		case <-t.C:
		case <-p.s.retry.Done():
			t.Stop()
			return err
		}
		wait = min(2*wait, endRetryMax)
	}
}

// logged gives an AnswerFailed the answer's text as the log holds it,
// and the pipeline the log's version: a failed append (the reason the
// answer fails, often) may have committed after all, or a crash may have
// lost appends that had succeeded, so the text the pipeline built may not
// be the chunks the log holds, and the failure's text must be those, as
// clients fold them. Other ends keep their text.
func (p *pipeline) logged(end *room.Event) error {
	f, ok := (*end).(room.AnswerFailed)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
	defer cancel()
	r := p.s.lock(p.room)
	defer p.s.unlock(r)
	st, err := p.s.refresh(ctx, p.room, r)
	if err != nil {
		return err
	}
	if st.Open == nil || st.Open.AnswerID != p.answerID {
		return errAbandoned
	}
	f.Text, p.version = st.Open.Text.String(), st.Version
	*end = f
	return nil
}

// RecoverInterrupted fails the answers a crash left open: those this
// instance started, and any other that has been idle for longer than idle
// (its process is presumed dead), and returns how many it failed. It reads
// the log after the position Deps.OpenAnswers reflects (all of it without
// one) for rooms where answers start, adds the rooms the finder lists, and
// lets each room's stream decide.
func (s *Service) RecoverInterrupted(ctx context.Context, idle time.Duration) (int, error) {
	return s.recoverOpen(ctx, idle, 0)
}

// recoverOpen is RecoverInterrupted sparing this instance's answers that
// started less than ownAge ago.
func (s *Service) recoverOpen(ctx context.Context, idle, ownAge time.Duration) (int, error) {
	// The rooms that may have an answer open: those the read model shows
	// streaming, and those the log after it starts answers in.
	candidates := map[int64]bool{}
	after := domain.Start
	if s.opens != nil {
		ids, pos, err := s.opens.OpenAnswers(ctx)
		if err != nil {
			return 0, fmt.Errorf("recover interrupted answers: %w", err)
		}
		for _, id := range ids {
			candidates[id] = true
		}
		after = pos
	}
	for ev, err := range domain.AllEvents(ctx, s.store, domain.ReadAllOptions{After: after, StreamPrefix: room.StreamPrefix, Limit: 5000}) {
		if err != nil {
			return 0, fmt.Errorf("recover interrupted answers: %w", err)
		}
		id, ok := room.ParseStream(ev.Stream)
		if !ok {
			continue
		}
		switch ev.Type {
		case room.TypeAnswerStarted:
			candidates[id] = true
		case room.TypeAnswerCompleted, room.TypeAnswerFailed, room.TypeAnswerCancelled, room.TypeRoomDeleted:
			delete(candidates, id)
		}
	}
	// Each candidate's own stream decides.
	failed := 0
	for id := range candidates {
		s.mu.Lock()
		_, mine := s.running[id]
		s.mu.Unlock()
		if mine {
			continue
		}
		var answer domain.UUID
		evs, _, err := s.execute(ctx, id, domain.Metadata{}, func(_ int, e room.Event) domain.UUID { return eventID(e) },
			func(st *room.State) ([]room.Event, error) {
				o := st.Open
				if o == nil || st.Deleted || (o.Instance != s.cfg.Instance && s.now().Sub(o.LastAt) < idle) ||
					(o.Instance == s.cfg.Instance && s.now().Sub(o.StartedAt) < ownAge) {
					return nil, nil // ended, or a live pipeline may still be streaming it
				}
				answer = o.AnswerID
				return room.Fail(st, o.AnswerID, room.ReasonInterrupted), nil
			})
		if domain.ErrorCode(err) == domain.ENOTFOUND {
			continue // a room the read model knows and the log does not: nothing to fail
		}
		if err != nil {
			return failed, fmt.Errorf("recover interrupted answer in room %d: %w", id, err)
		}
		if len(evs) > 0 {
			failed++
			s.log.Info("failed an interrupted answer", "room_id", id, "answer_id", answer)
		}
	}
	return failed, nil
}
