package memory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

// Store is what the Worker needs of the event store.
type Store interface {
	domain.Appender
	domain.StreamReader
}

// Worker defaults.
const (
	DefaultMaxRounds   = 4
	DefaultMaxAttempts = 8
)

// readPage is how many events the Worker reads at a time.
const readPage = 500

// loadPage is how many events of the types it folds Load reads at a time:
// about 20 turns. A read of some types passes over the others until it
// has that many (or reaches the start), so a page much larger than the
// events after the last summary would walk a long room's whole history.
const loadPage = 64

// Config configures a Worker. Zero values are the documented defaults.
type Config struct {
	// MaxTokenLimit is the buffer's budget: after an answer completes,
	// while the tokens of the turns the summary does not cover exceed it,
	// the oldest whole turns are folded into the summary. Default
	// DefaultMaxTokenLimit.
	MaxTokenLimit int
	// MaxRounds bounds how often one Compact decides on a summary: it
	// writes one at most, and decides again each time another writer's
	// summary came first, up to MaxRounds times in all before it gives
	// up. Default DefaultMaxRounds.
	MaxRounds int
	// MaxAttempts bounds the appends of one summary that conflict with
	// events appended meanwhile. Default DefaultMaxAttempts.
	MaxAttempts int
}

// Validate reports every problem with c, one line each.
func (c Config) Validate() error {
	return errors.Join(validLimit("MaxTokenLimit", c.MaxTokenLimit), validLimit("MaxRounds", c.MaxRounds), validLimit("MaxAttempts", c.MaxAttempts))
}

func (c *Config) setDefaults() {
	if c.MaxTokenLimit == 0 {
		c.MaxTokenLimit = DefaultMaxTokenLimit
	}
	if c.MaxRounds == 0 {
		c.MaxRounds = DefaultMaxRounds
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
}

// Deps are a Worker's collaborators. All but Logger are required.
type Deps struct {
	Store      Store
	Summarizer Summarizer
	Counter    TokenCounter
	Now        func() time.Time
	Logger     *slog.Logger
}

// Worker writes a room's summaries: Compact reads the turns after the
// room's last summary and, while they exceed the token limit, folds the
// oldest into a new SummaryUpdated, appended at the exact stream version
// it read. It is safe for concurrent use, also by several processes: a
// turn is summarised once.
type Worker struct {
	cfg   Config
	store Store
	sum   Summarizer
	count TokenCounter
	now   func() time.Time
	log   *slog.Logger
}

// NewWorker validates cfg and deps and returns a Worker.
func NewWorker(cfg Config, deps Deps) (*Worker, error) {
	errs := []error{cfg.Validate()}
	if deps.Store == nil {
		errs = append(errs, errors.New("memory worker: a Store is required"))
	}
	if deps.Summarizer == nil {
		errs = append(errs, errors.New("memory worker: a Summarizer is required"))
	}
	if deps.Counter == nil {
		errs = append(errs, errors.New("memory worker: a TokenCounter is required"))
	}
	if deps.Now == nil {
		errs = append(errs, errors.New("memory worker: a clock (Now) is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	return &Worker{cfg: cfg, store: deps.Store, sum: deps.Summarizer, count: deps.Counter, now: deps.Now, log: deps.Logger}, nil
}

// summaryNamespace derives SummaryUpdated event IDs.
var summaryNamespace = domain.MustParseUUID("3f0c6d2e-8a41-4b7f-9c55-0e2d7a9b1c84")

// SummaryEventID is the ID of the SummaryUpdated of a room stream covering
// through a version: two writers of the same summary write one event (the
// store takes the second append as a retry of the first).
func SummaryEventID(stream string, through int64) domain.UUID {
	return domain.NameUUID(summaryNamespace, stream+"/summary/"+strconv.FormatInt(through, 10))
}

// Compact folds the room's oldest turns into a new summary so that the
// turns it does not cover fit the token limit, and writes it. It does
// nothing for a room that does not exist or was deleted, or whose turns
// fit. A conflicting append means the room moved on: Compact reads it
// again and appends the same summary at the new version when no other
// summary was written meanwhile (turns that ended meanwhile are left to
// the next Compact, which their answer's end asks for), and decides again
// from what it read when one was, within MaxRounds decisions and
// MaxAttempts appends each. It writes one summary at most.
func (w *Worker) Compact(ctx context.Context, roomID int64) error {
	c, err := w.Load(ctx, roomID)
	if err != nil {
		return err
	}
	for range w.cfg.MaxRounds {
		ev, n, err := w.decide(ctx, roomID, c)
		if err != nil || n == 0 {
			return err
		}
		if c, err = w.append(ctx, roomID, c, ev, n); err != nil || c == nil {
			return err
		}
	}
	return nil
}

// Summarize decides the room's next summary as Compact would, from its
// stream as it stands, and returns it without appending it (ok false when
// the room does not exist, was deleted, or its turns fit): the caller
// appends it, with its ID SummaryEventID, where it knows it will not
// conflict — the chat service, in the answer streaming in the room, if
// any. A summary whose CoversThroughVersion a later summary already
// covers changes nothing when folded.
func (w *Worker) Summarize(ctx context.Context, roomID int64) (ev room.SummaryUpdated, ok bool, err error) {
	c, err := w.Load(ctx, roomID)
	if err != nil {
		return ev, false, err
	}
	ev, n, err := w.decide(ctx, roomID, c)
	return ev, n > 0 && err == nil, err
}

// decide summarises the oldest turns of c while they exceed the limit; n
// is how many it folded, 0 when there is nothing to do.
func (w *Worker) decide(ctx context.Context, roomID int64, c *Conversation) (room.SummaryUpdated, int, error) {
	if c.Version == domain.NoVersion || c.Deleted {
		return room.SummaryUpdated{}, 0, nil
	}
	n := Plan(c.Turns, w.count, w.cfg.MaxTokenLimit)
	if n == 0 {
		return room.SummaryUpdated{}, 0, nil
	}
	fold := append([]Turn(nil), c.Turns[:n]...)
	text, err := w.sum.Summarize(ctx, c.Summary, fold)
	if err != nil {
		return room.SummaryUpdated{}, 0, fmt.Errorf("room %d: summarise %d turns with %s: %w", roomID, n, w.sum.Name(), err)
	}
	return room.SummaryUpdated{Summary: text, CoversThroughVersion: fold[n-1].EndVersion, Tokens: w.count.Count(text), Summarizer: w.sum.Name()}, n, nil
}

// append writes ev at c's version and returns nil. On a conflict it reads
// the room again (domain.AppendDecided, within MaxAttempts appends): when
// the summary is still c's, ev still covers the buffer's oldest turns and
// is appended at the new version; when another summary was written (or
// the room was deleted), it returns the room as read, for Compact to
// decide again from.
func (w *Worker) append(ctx context.Context, roomID int64, c *Conversation, ev room.SummaryUpdated, turns int) (*Conversation, error) {
	stream := room.Stream(roomID)
	event, err := room.EncodeEvent(SummaryEventID(stream, ev.CoversThroughVersion), ev, domain.Metadata{OccurredAt: w.now().UTC()})
	if err != nil {
		return nil, fmt.Errorf("room %d: %w", roomID, err)
	}
	version := c.Version
	var fresh *Conversation
	var readErr error
	res, err := domain.AppendDecided(ctx, w.store, stream, w.cfg.MaxAttempts,
		func(ctx context.Context, conflict error) ([]domain.EventData, domain.ExpectedVersion, error) {
			if conflict != nil {
				// Only what was appended since matters: another summary or
				// the room's deletion means deciding again; anything else
				// (the next answer's chunks, most often) moves the version on.
				head, moved, err := w.since(ctx, stream, version)
				if err == nil && moved {
					if fresh, err = w.Load(ctx, roomID); err == nil {
						w.log.Debug("another writer summarised the room first", "room_id", roomID, "covers_through_version", fresh.Through)
						return nil, domain.Any(), nil
					}
				}
				if err != nil {
					readErr = err
					return nil, domain.Any(), err
				}
				version = head
			}
			return []domain.EventData{event}, domain.Exact(version), nil
		})
	switch {
	case err != nil && err == readErr:
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("room %d: append %s at version %d: %w", roomID, ev.EventType(), version, err)
	case fresh != nil:
		return fresh, nil
	}
	w.log.Info("summarised the oldest turns", "room_id", roomID, "turns", turns, "covers_through_version", ev.CoversThroughVersion,
		"tokens", ev.Tokens, "summarizer", ev.Summarizer, "version", res.Version)
	return nil, nil
}

// since reads the events of stream after version and returns the last
// one's version, and whether one of them is a summary or the room's
// deletion.
func (w *Worker) since(ctx context.Context, stream string, version int64) (head int64, moved bool, err error) {
	head = version
	for ev, err := range domain.StreamEvents(ctx, w.store, stream, domain.ReadStreamOptions{From: version + 1, Limit: readPage}) {
		if err != nil {
			return 0, false, fmt.Errorf("read %s after version %d: %w", stream, head, err)
		}
		if ev.Type == room.TypeSummaryUpdated || ev.Type == room.TypeRoomDeleted {
			return ev.Version, true, nil
		}
		head = ev.Version
	}
	return head, false, nil
}

// Load folds the room's memory from its stream as of its last event: the
// last summary and the events after the version it covers, read backwards
// from that event until both are found. Only the types the memory folds
// are read (Folds; answer chunks, the bulk of a stream, change nothing but
// the version), and the version is the last event's, as a fold of every
// event would leave it. A room without events gives an empty Conversation
// at domain.NoVersion.
func (w *Worker) Load(ctx context.Context, roomID int64) (*Conversation, error) {
	stream := room.Stream(roomID)
	last, err := w.store.ReadStream(ctx, stream, domain.ReadStreamOptions{Direction: domain.Backward, From: domain.EndOfStream, Limit: 1})
	if errors.Is(err, domain.ErrStreamNotFound) || err == nil && len(last) == 0 {
		return NewConversation(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("room %d: read memory: %w", roomID, err)
	}
	head := last[0].Version
	var (
		back    []domain.RecordedEvent // newest first
		summary *room.SummaryUpdated
	)
	// Reading from head, not the end, keeps events appended meanwhile out.
	opts := domain.ReadStreamOptions{Direction: domain.Backward, From: head, Limit: loadPage, Types: foldedTypes}
	for ev, err := range domain.StreamEvents(ctx, w.store, stream, opts) {
		if err != nil {
			return nil, fmt.Errorf("room %d: read memory: %w", roomID, err)
		}
		back = append(back, ev)
		if summary == nil && ev.Type == room.TypeSummaryUpdated {
			p, err := room.Decode(ev, false)
			if err != nil {
				return nil, fmt.Errorf("room %d: read memory: %w", roomID, err)
			}
			s := p.(room.SummaryUpdated)
			summary = &s
		}
		// Older events than the summary covers change nothing.
		if summary != nil && ev.Version <= summary.CoversThroughVersion+1 {
			break
		}
	}
	c := NewConversation()
	if summary != nil {
		c = Start(summary.Summary, summary.CoversThroughVersion)
	}
	for i := len(back) - 1; i >= 0; i-- {
		if err := c.Apply(back[i]); err != nil {
			return nil, fmt.Errorf("room %d: read memory: %w", roomID, err)
		}
	}
	// The events after the last one read are of types Apply only counts.
	c.Version = max(c.Version, head)
	return c, nil
}
