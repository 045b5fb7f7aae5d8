package chat

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/memory"
	"github.com/parleychat/parley/domain/room"
)

// Store is what the chat service needs of the event store.
type Store interface {
	domain.Appender
	domain.StreamReader
	domain.AllReader
}

// Metrics receives what the service measures; nil discards it.
type Metrics interface {
	// ObserveAppend records one append: its duration, event count and error.
	ObserveAppend(d time.Duration, events int, err error)
	// ObserveAnswer records an answer's end: its outcome (complete, failed,
	// cancelled) and how long it took.
	ObserveAnswer(outcome string, d time.Duration)
}

// Config configures the Service. Zero values are documented defaults.
type Config struct {
	// Instance names this process in AnswerStarted, so that after a crash
	// it recognises its own interrupted answers. Default "chatd".
	Instance string
	// System is the generator's system text.
	System string
	// AnswerTimeout bounds one answer. Default 2 minutes.
	AnswerTimeout time.Duration
	// ShutdownGrace is how long Run lets streaming answers finish after its
	// context ends before failing them with reason "shutdown". Default 5s.
	ShutdownGrace time.Duration
	// MaxChunkBatch caps the deltas one AnswerChunk carries. Default 256.
	MaxChunkBatch int
	// MaxChunkBytes caps the text one AnswerChunk gathers: a delta that
	// finds it reached starts the next (a single delta may exceed it). It
	// keeps events far below the stores' limits. Default 32 KiB.
	MaxChunkBytes int
	// ChunkWindow is how long a delta may wait for the next when the
	// generator emits them faster than that: after a delta that came
	// within ChunkWindow of the one before it, the pipeline holds the
	// chunk until ChunkWindow after its first delta, so a fast model's
	// deltas go out a few per event. Deltas that arrive while the room's
	// previous append is in flight always join the next chunk. Zero means
	// DefaultChunkWindow; negative never holds a delta.
	ChunkWindow time.Duration
	// MemoryReadTimeout bounds one read of Deps.MemoryReader; on timeout
	// the prompt's memory comes from the room's stream. Default 250ms.
	MemoryReadTimeout time.Duration
	// CompactTimeout bounds one Deps.Memory.Summarize after an answer, and
	// its append. Default 2 minutes.
	CompactTimeout time.Duration
	// EndGrace is how long past AnswerTimeout an answer's pipeline keeps
	// retrying to write its terminal event while the store fails (a
	// database outage), with backoff. Default 1 minute. An answer still
	// open after that is the sweeper's.
	EndGrace time.Duration
	// SweepInterval is how often Run looks for answers left open: this
	// instance's that no pipeline of this process runs any more and that
	// started more than AnswerTimeout ago (its end could not be written),
	// and other instances' idle for RecoverIdle. It fails them as
	// interrupted, so a room is never left busy. Default 30s.
	SweepInterval time.Duration
	// RecoverIdle is how long another instance's open answer must have
	// been idle for the sweeper to fail it (its process is presumed dead).
	// Default 5 minutes.
	RecoverIdle time.Duration
	// MaxRooms bounds the rooms whose folded state is kept, least recently
	// used dropped first. Default DefaultMaxRooms.
	MaxRooms int
}

// DefaultChunkWindow is Config.ChunkWindow's default.
const DefaultChunkWindow = 10 * time.Millisecond

// DefaultSystem is the generator's default system text.
const DefaultSystem = "You are Parley, an assistant that answers questions about public policies for young people. " +
	"Answer from the documents you are given and the conversation so far; say so when you do not know."

func (c *Config) setDefaults() {
	if c.Instance == "" {
		c.Instance = "chatd"
	}
	if c.System == "" {
		c.System = DefaultSystem
	}
	if c.AnswerTimeout <= 0 {
		c.AnswerTimeout = 2 * time.Minute
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 5 * time.Second
	}
	if c.MaxChunkBatch <= 0 {
		c.MaxChunkBatch = 256
	}
	if c.MaxChunkBytes <= 0 {
		c.MaxChunkBytes = 32 << 10
	}
	if c.ChunkWindow == 0 {
		c.ChunkWindow = DefaultChunkWindow
	}
	if c.MemoryReadTimeout <= 0 {
		c.MemoryReadTimeout = 250 * time.Millisecond
	}
	if c.CompactTimeout <= 0 {
		c.CompactTimeout = 2 * time.Minute
	}
	if c.EndGrace <= 0 {
		c.EndGrace = time.Minute
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = 30 * time.Second
	}
	if c.RecoverIdle <= 0 {
		c.RecoverIdle = 5 * time.Minute
	}
	if c.MaxRooms <= 0 {
		c.MaxRooms = DefaultMaxRooms
	}
}

// Deps are the Service's collaborators. Clock and Random default to the
// real ones' stand-ins the caller passes; they are required.
type Deps struct {
	Store     Store
	Generator Generator
	// Retriever grounds answers in documents; nil answers without them.
	Retriever Retriever
	Now       func() time.Time
	Random    io.Reader
	Logger    *slog.Logger
	Metrics   Metrics
	// Memory, when set, summarises a room's oldest turns after each
	// completed answer (memory.Worker).
	Memory Memory
	// MemoryReader, when set, is where prompts read the room's summary and
	// buffer from (the Redis read model); without it, or when it fails,
	// they come from the room's stream.
	MemoryReader MemoryReader
	// OpenAnswers, when set, tells RecoverInterrupted which rooms a read
	// model (the ChatLog) shows with an answer streaming and the log
	// position it reflects, so that it reads only the log after it.
	OpenAnswers OpenAnswerFinder
	// Keys, when set, destroys rooms' data keys: Erase needs it, and
	// Delete erases with it.
	Keys KeyShredder
	// Owned, when set, lists a user's rooms for EraseUser (the ChatLog).
	Owned OwnedRooms
}

// OpenAnswerFinder lists the rooms a read model shows with an answer still
// streaming, and the log position the read model reflects.
type OpenAnswerFinder interface {
	OpenAnswers(ctx context.Context) ([]int64, domain.Position, error)
}

// Service runs rooms: creating, posting, cancelling, deleting, and the
// answer pipeline. Commands on one room are serialised in this process and
// appended at exact versions, so processes sharing a store stay consistent.
type Service struct {
	cfg     Config
	store   Store
	gen     Generator
	ret     Retriever
	now     func() time.Time
	random  io.Reader
	log     *slog.Logger
	metrics Metrics
	memory  Memory
	reader  MemoryReader
	opens   OpenAnswerFinder
	keys    KeyShredder
	owned   OwnedRooms
	// memOutage and retOutage rate-limit the warnings while the memory
	// read model or retrieval fails.
	memOutage outage
	retOutage outage

	rooms *roomCache

	mu      sync.Mutex
	running map[int64]*runningAnswer
	// compacting holds the rooms with a Compact running in this process;
	// true asks it to run once more when done.
	compacting map[int64]bool

	ctx    context.Context // answers run under it; cancelled by Run's end
	cancel context.CancelFunc
	// retry bounds the pipelines' retries of their terminal events; Run
	// ends it a ShutdownGrace after cancelling ctx.
	retry     context.Context
	stopRetry context.CancelFunc
	answers   sync.WaitGroup
}

type runningAnswer struct {
	id        domain.UUID
	cancel    context.CancelFunc
	cancelled bool // by a Cancel command in this process
	// summary is a summary of the room's older turns for the answer to
	// append (Service.summarize); ending says it takes no more. Both are
	// guarded by Service.mu.
	summary *room.SummaryUpdated
	ending  bool
}

// idNamespace derives message IDs from client IDs.
var idNamespace = domain.MustParseUUID("9b7c1a52-6f0e-4d8b-9a3e-5c1f2e7d4b60")

// NewService returns a Service. Answers it starts run until Run's context
// ends; call Run.
func NewService(cfg Config, deps Deps) *Service {
	cfg.setDefaults()
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	retry, stopRetry := context.WithCancel(context.Background())
	return &Service{
		cfg: cfg, store: deps.Store, gen: deps.Generator, now: deps.Now, random: deps.Random,
		log: deps.Logger, metrics: deps.Metrics, memory: deps.Memory, reader: deps.MemoryReader, opens: deps.OpenAnswers,
		keys: deps.Keys, owned: deps.Owned,
		ret:   deps.Retriever,
		rooms: newRoomCache(cfg.MaxRooms), running: map[int64]*runningAnswer{}, compacting: map[int64]bool{},
		ctx: ctx, cancel: cancel, retry: retry, stopRetry: stopRetry,
	}
}

// Run sweeps for answers left open every SweepInterval (see Config) until
// ctx ends. Then it gives streaming answers ShutdownGrace to finish, fails
// the rest with reason "shutdown", gives the pipelines another
// ShutdownGrace to write those ends (the store may be failing), and
// returns when every answer goroutine has ended.
func (s *Service) Run(ctx context.Context) error {
	var sweeper sync.WaitGroup
	sweeper.Go(func() { s.sweep(ctx) })
	<-ctx.Done()
	sweeper.Wait()
	done := make(chan struct{})
	go func() { s.answers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.cfg.ShutdownGrace):
		s.cancel()
		select {
		case <-done:
		case <-time.After(s.cfg.ShutdownGrace):
			s.stopRetry()
			<-done
		}
	}
	s.cancel()
	s.stopRetry()
	return nil
}

// RoomInfo describes a room.
type RoomInfo struct {
	ID        int64
	Owner     string
	Title     string
	CreatedAt time.Time
	Version   int64
	Streaming bool
	// Deleted: the room was deleted or erased.
	Deleted bool
	// Erased: the room's content was erased (RoomErased).
	Erased bool
}

func info(st *room.State) RoomInfo {
	return RoomInfo{ID: st.ID, Owner: st.Owner, Title: st.Title, CreatedAt: st.CreatedAt, Version: st.Version, Streaming: st.Open != nil, Deleted: st.Deleted, Erased: st.Erased}
}

// CreateRoom creates a room owned by owner with a fresh random id below
// 2^53 (exact in JavaScript numbers, and not guessable).
func (s *Service) CreateRoom(ctx context.Context, owner, title string) (RoomInfo, error) {
	for range 5 {
		var b [8]byte
		if _, err := io.ReadFull(s.random, b[:]); err != nil {
			return RoomInfo{}, fmt.Errorf("create room: random id: %w", err)
		}
		id := int64(binary.BigEndian.Uint64(b[:])>>11) + 1
		evs, err := room.Create(room.NewState(), id, owner, title)
		if err != nil {
			return RoomInfo{}, err
		}
		data, err := s.encode(evs, domain.Metadata{UserID: owner}, nil)
		if err != nil {
			return RoomInfo{}, err
		}
		_, err = s.appendTimed(ctx, room.Stream(id), domain.NoStream(), data)
		if errors.Is(err, domain.ErrConflict) {
			continue // the id is taken: draw another
		}
		if err != nil {
			return RoomInfo{}, fmt.Errorf("create room: %w", err)
		}
		st, err := s.state(ctx, id)
		if err != nil {
			return RoomInfo{}, err
		}
		return st, nil
	}
	return RoomInfo{}, fmt.Errorf("create room: five random ids were all taken")
}

// Room returns a room's current state as the stream tells it, for user:
// room.ErrNotFound when it does not exist or was deleted, room.ErrForbidden
// when user does not own it.
func (s *Service) Room(ctx context.Context, id int64, user string) (RoomInfo, error) {
	r := s.lock(id)
	defer s.unlock(r)
	st, err := s.refresh(ctx, id, r)
	if err != nil {
		return RoomInfo{}, err
	}
	if err := room.Authorize(st, user); err != nil {
		return RoomInfo{}, err
	}
	return info(st), nil
}

func (s *Service) state(ctx context.Context, id int64) (RoomInfo, error) {
	r := s.lock(id)
	defer s.unlock(r)
	st, err := s.refresh(ctx, id, r)
	if err != nil {
		return RoomInfo{}, err
	}
	return info(st), nil
}

// refresh folds the events appended since the cached state into it. The
// caller holds r.mu.
func (s *Service) refresh(ctx context.Context, id int64, r *cachedRoom) (*room.State, error) {
	for ev, err := range domain.StreamEvents(ctx, s.store, room.Stream(id), domain.ReadStreamOptions{From: r.state.Version + 1, Limit: 1000}) {
		if errors.Is(err, domain.ErrStreamNotFound) {
			return r.state, nil
		}
		if err != nil {
			return nil, fmt.Errorf("load room %d: %w", id, err)
		}
		if err := r.state.Evolve(ev); err != nil {
			return nil, fmt.Errorf("load room %d: %w", id, err)
		}
	}
	return r.state, nil
}

// maxAppendAttempts bounds the appends of one decision that conflict with
// other writers: the first and 20 more.
const maxAppendAttempts = 21

// execute decides on the room's fresh state and appends the decision at
// the state's exact version, deciding again on the new tail after a
// conflict (domain.AppendDecided). It returns the events appended and the
// append's result (nil events: nothing was decided).
func (s *Service) execute(ctx context.Context, id int64, meta domain.Metadata, ids func(i int, e room.Event) domain.UUID,
	decide func(*room.State) ([]room.Event, error)) ([]room.Event, domain.AppendResult, error) {
	r := s.lock(id)
	defer s.unlock(r)
	var evs []room.Event
	var decideErr error
	res, err := domain.AppendDecided(ctx, timedAppender{s: s}, room.Stream(id), maxAppendAttempts,
		func(ctx context.Context, conflict error) ([]domain.EventData, domain.ExpectedVersion, error) {
			evs = nil
			if conflict != nil {
				rewound(r, conflict)
			}
			st, err := s.refresh(ctx, id, r)
			if err == nil {
				evs, err = decide(st)
			}
			var data []domain.EventData
			if err == nil && len(evs) > 0 {
				data, err = s.encode(evs, meta, ids)
			}
			if err != nil {
				evs, decideErr = nil, err
				return nil, domain.Any(), err
			}
			return data, domain.Exact(st.Version), nil
		})
	switch {
	case err != nil && err == decideErr:
		return nil, domain.AppendResult{}, err
	case err != nil:
		return nil, domain.AppendResult{}, fmt.Errorf("room %d: append %s: %w", id, evs[0].EventType(), err)
	case len(evs) == 0:
		return nil, domain.AppendResult{}, nil
	}
	return evs, res, nil
}

func (s *Service) appendTimed(ctx context.Context, stream string, exp domain.ExpectedVersion, data []domain.EventData) (domain.AppendResult, error) {
	start := time.Now()
	res, err := s.store.Append(ctx, stream, exp, data...)
	if s.metrics != nil {
		s.metrics.ObserveAppend(time.Since(start), len(data), err)
	}
	return res, err
}

// encode turns payloads into events (room.EncodeEvents) with IDs from ids
// (random when nil or when it returns the nil UUID) and the given metadata.
func (s *Service) encode(evs []room.Event, meta domain.Metadata, ids func(int, room.Event) domain.UUID) ([]domain.EventData, error) {
	meta.OccurredAt = s.now().UTC()
	eventIDs := make([]domain.UUID, len(evs))
	for i, e := range evs {
		if ids != nil {
			eventIDs[i] = ids(i, e)
		}
		if eventIDs[i].IsZero() {
			id, err := domain.NewUUID(s.random)
			if err != nil {
				return nil, err
			}
			eventIDs[i] = id
		}
	}
	return room.EncodeEvents(evs, eventIDs, meta)
}

// PostResult is what Post did.
type PostResult struct {
	MessageID domain.UUID
	AnswerID  domain.UUID
	// Duplicate is true when the message was already posted (a retried
	// client_id): nothing was written and no new answer started.
	Duplicate bool
	Version   int64
}

// Post posts user's question to the room and starts its answer. With a
// clientID, the message ID derives from it, so a retried send is stored
// once and answered once.
func (s *Service) Post(ctx context.Context, id int64, user, text, clientID string) (PostResult, error) {
	return s.PostAdmitted(ctx, id, user, text, clientID, nil)
}

// PostAdmitted is Post with admit, which a transport uses to apply its
// rate limit in the protocol's order: the message is refused as invalid or
// too large first, a retried clientID already stored is a duplicate (and
// costs nothing), then admit is called, once, and only then is the room
// checked for an answer in progress (busy). An error from admit refuses
// the message and is returned as is. A nil admit admits everything.
func (s *Service) PostAdmitted(ctx context.Context, id int64, user, text, clientID string, admit func() error) (PostResult, error) {
	// The text needs no room to check, so a bad one costs no memory read
	// (which may wait up to MemoryReadTimeout) and no stream read.
	if err := room.ValidateMessage(text); err != nil {
		return PostResult{}, err
	}
	var msgID domain.UUID
	var err error
	if clientID != "" {
		msgID = domain.NameUUID(idNamespace, room.Stream(id)+"/"+user+"/"+clientID)
	} else if msgID, err = domain.NewUUID(s.random); err != nil {
		return PostResult{}, err
	}
	answerID := domain.NameUUID(msgID, "answer")
	mem := s.readMemory(ctx, id, user)
	var prompt Prompt
	admitted := admit == nil
	evs, res, err := s.execute(ctx, id, domain.Metadata{CorrelationID: msgID.String(), UserID: user},
		func(_ int, e room.Event) domain.UUID { return eventID(e) },
		func(st *room.State) ([]room.Event, error) {
			evs, err := room.PostMessage(st, room.Post{UserID: user, Text: text, ClientID: clientID,
				MessageID: msgID, AnswerID: answerID, Model: s.gen.Name(), Instance: s.cfg.Instance})
			if !admitted && (len(evs) > 0 || errors.Is(err, room.ErrBusy)) {
				if err := admit(); err != nil {
					return nil, err
				}
				admitted = true
			}
			if len(evs) > 0 {
				prompt = s.prompt(st, text, mem)
			}
			return evs, err
		})
	if err != nil {
		return PostResult{}, err
	}
	if len(evs) == 0 {
		return PostResult{MessageID: msgID, AnswerID: answerID, Duplicate: true}, nil
	}
	s.startAnswer(id, user, msgID, answerID, res.Version, prompt)
	return PostResult{MessageID: msgID, AnswerID: answerID, Version: res.Version}, nil
}

// eventID gives MessagePosted its message ID, AnswerStarted the answer ID,
// and every terminal answer event one shared ID per answer, so the store
// can never hold two endings of one answer.
func eventID(e room.Event) domain.UUID {
	switch e := e.(type) {
	case room.MessagePosted:
		return e.MessageID
	case room.AnswerStarted:
		return e.AnswerID
	case room.RetrievalRecorded:
		return domain.NameUUID(e.AnswerID, "retrieval")
	case room.AnswerChunk:
		return domain.NameUUID(e.AnswerID, "chunk-"+strconv.Itoa(e.Seq))
	case room.AnswerCompleted:
		return domain.NameUUID(e.AnswerID, "end")
	case room.AnswerFailed:
		return domain.NameUUID(e.AnswerID, "end")
	case room.AnswerCancelled:
		return domain.NameUUID(e.AnswerID, "end")
	}
	return domain.UUID{}
}

// prompt is the system text, the room's summary and buffer (from mem when
// it is current enough, see promptMemory), and the question.
func (s *Service) prompt(st *room.State, question string, mem *memory.Conversation) Prompt {
	summary, history := promptMemory(st, mem)
	return Prompt{System: s.cfg.System, Summary: summary, History: history, Question: question}
}

// Cancel cancels the answer streaming in the room.
func (s *Service) Cancel(ctx context.Context, id int64, user string) error {
	return s.stopping(ctx, id, user, room.Cancel)
}

// Delete deletes the room, cancelling its answer. With Deps.Keys (as chatd
// runs) deleting is erasing (see Erase): a person who deletes a
// conversation expects it gone, not hidden. A room already deleted or
// erased is not found.
func (s *Service) Delete(ctx context.Context, id int64, user string) error {
	if s.keys == nil {
		return s.stopping(ctx, id, user, room.Delete)
	}
	info, err := s.state(ctx, id)
	if err != nil {
		return err
	}
	if info.Version < 0 || info.Deleted {
		return room.ErrNotFound
	}
	_, err = s.Erase(ctx, id, Eraser{By: user, Owner: user, Reason: room.ErasedByOwner})
	return err
}

// stopping runs a user's command that may cancel the room's answer, then
// stops this process's generation of it.
func (s *Service) stopping(ctx context.Context, id int64, user string, decide func(*room.State, string) ([]room.Event, error)) error {
	evs, _, err := s.execute(ctx, id, domain.Metadata{UserID: user}, func(_ int, e room.Event) domain.UUID { return eventID(e) },
		func(st *room.State) ([]room.Event, error) { return decide(st, user) })
	if err != nil {
		return err
	}
	s.stopLocal(id, evs)
	return nil
}

// stopLocal stops this process's generation of an answer just cancelled.
func (s *Service) stopLocal(id int64, evs []room.Event) {
	for _, e := range evs {
		var answer domain.UUID
		switch c := e.(type) {
		case room.AnswerCancelled:
			answer = c.AnswerID
		case room.AnswerFailed: // the room's erasure ended it
			answer = c.AnswerID
		default:
			continue
		}
		s.mu.Lock()
		if ra := s.running[id]; ra != nil && ra.id == answer {
			ra.cancelled = true
			ra.cancel()
		}
		s.mu.Unlock()
	}
}
