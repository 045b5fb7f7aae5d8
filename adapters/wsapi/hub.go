package wsapi

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/room"
)

// hubStore is what the hub needs of the event store (or of the process's
// shared log subscription, projections.Feed).
type hubStore interface {
	SubscribeAll(ctx context.Context, opts domain.SubscribeAllOptions, h domain.Handler) error
	HeadPosition(ctx context.Context) (domain.Position, error)
}

// Hub holds one subscription to the log and fans room events out to the
// connections registered for each room.
type Hub struct {
	store hubStore
	log   *slog.Logger

	mu    sync.Mutex
	rooms map[int64]map[*conn]struct{}
	ready chan struct{}

	posMu    sync.Mutex
	pos      domain.Position // the last position dispatched
	posWaits []posWait
}

type posWait struct {
	pos  domain.Position
	done chan struct{}
}

// NewHub returns a hub over store; call Run.
func NewHub(store hubStore, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Hub{store: store, log: log, rooms: map[int64]map[*conn]struct{}{}, ready: make(chan struct{})}
}

// Run follows the log from its current head until ctx ends. Events before
// the head reach clients through their catch-up reads, never through here.
//
// When the store reports that it restarted (domain.ErrStoreRestarted: it
// may have lost its newest events, and their positions and versions may
// be reused), the frames sent may no longer be the log's: Run takes the
// new head, closes every socket with 1012 so that each client resumes by
// version and hash (and gets the history when its position is gone), and
// follows the log again from that head.
func (h *Hub) Run(ctx context.Context) error {
	head, err := h.store.HeadPosition(ctx)
	if err != nil {
		return err
	}
	h.advance(head)
	close(h.ready)
	for {
		err := h.store.SubscribeAll(ctx, domain.SubscribeAllOptions{After: head, StreamPrefix: room.StreamPrefix}, h.dispatch)
		if !errors.Is(err, domain.ErrStoreRestarted) || ctx.Err() != nil {
			return err
		}
		if head, err = h.restart(ctx); err != nil {
			return err
		}
	}
}

// restart takes the log's new head, then closes every socket registered
// by then: a socket registered later catches up from the stream after
// that head was taken, so nothing falls between its catch-up and the new
// subscription.
func (h *Hub) restart(ctx context.Context) (domain.Position, error) {
	h.log.Warn("hub: the event log restarted and may have lost its newest events; closing every socket so that clients resume by hash")
	wait := 100 * time.Millisecond
	for {
		head, err := h.store.HeadPosition(ctx)
		if err == nil {
			h.posMu.Lock()
			h.pos = head
			h.posMu.Unlock()
			h.mu.Lock()
			for _, conns := range h.rooms {
				for c := range conns {
					c.requestClose(discLogRestarted)
				}
			}
			h.mu.Unlock()
			return head, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return domain.Position{}, ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// Ready is closed once Run has found where to start.
func (h *Hub) Ready() <-chan struct{} { return h.ready }

func (h *Hub) dispatch(_ context.Context, batch []domain.RecordedEvent) error {
	if len(batch) > 0 {
		defer h.advance(batch[len(batch)-1].Position)
	}
	for _, ev := range batch {
		id, ok := room.ParseStream(ev.Stream)
		if !ok {
			continue
		}
		targets := h.targets(id)
		if len(targets) == 0 {
			continue
		}
		if ev.Type == room.TypeRoomDeleted || ev.Type == room.TypeRoomErased {
			for _, c := range targets {
				c.requestClose(discRoomDeleted)
			}
			continue
		}
		if allHave(targets, ev.Version) {
			continue // the tap delivered it (or the catch-up sent it): no need to encode it again
		}
		f, ok, err := eventFrame(ev)
		if err != nil {
			h.log.Error("hub: cannot encode an event; clients of the room will not see it", "stream", ev.Stream, "version", ev.Version, "error", err)
			continue
		}
		if !ok {
			f = frame{version: ev.Version} // advances versions without a frame
		}
		for _, c := range targets {
			c.push(f)
		}
	}
	return nil
}

// targets returns a snapshot of room id's connections.
func (h *Hub) targets(id int64) []*conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	conns := h.rooms[id]
	if len(conns) == 0 {
		return nil
	}
	targets := make([]*conn, 0, len(conns))
	for c := range conns {
		targets = append(targets, c)
	}
	return targets
}

// allHave reports whether every connection has already queued version v,
// so that pushing its frame would change nothing.
func allHave(conns []*conn, v int64) bool {
	for _, c := range conns {
		if !c.has(v) {
			return false
		}
	}
	return true
}

func (h *Hub) register(id int64, c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rooms[id] == nil {
		h.rooms[id] = map[*conn]struct{}{}
	}
	h.rooms[id][c] = struct{}{}
}

func (h *Hub) unregister(id int64, c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.rooms[id], c)
	if len(h.rooms[id]) == 0 {
		delete(h.rooms, id)
	}
}

// advance records that every event up to pos has been handed to the
// connections, and wakes those waiting for it.
func (h *Hub) advance(pos domain.Position) {
	h.posMu.Lock()
	defer h.posMu.Unlock()
	if h.pos.Less(pos) {
		h.pos = pos
	}
	kept := h.posWaits[:0]
	for _, w := range h.posWaits {
		if !h.pos.Less(w.pos) {
			close(w.done)
			continue
		}
		kept = append(kept, w)
	}
	h.posWaits = kept
}

// WaitFor returns once the hub has handed every event up to pos to its
// connections' queues, or with ctx's error. The server uses it on shutdown
// so that the answers' last events reach clients before they are closed.
func (h *Hub) WaitFor(ctx context.Context, pos domain.Position) error {
	select {
	case <-h.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	h.posMu.Lock()
	if !h.pos.Less(pos) {
		h.posMu.Unlock()
		return nil
	}
	w := posWait{pos: pos, done: make(chan struct{})}
	h.posWaits = append(h.posWaits, w)
	h.posMu.Unlock()
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Tap returns store with its appends of answer chunks also handed to the
// hub's connections at once, without waiting for the log subscription:
// per-room order needs only stream versions, which the append returns,
// while the subscription reads the global log, which must wait for every
// earlier writer to commit. The chat service appends through it.
//
// Only appends made of chunks take this path (room.IsChunk, the chunk
// policy): a chunk's ID is its answer's and its sequence number's, written
// by one pipeline, so a successful append means the stored chunks are the
// ones given. Other events share IDs by design (an answer's endings), so
// an append that returns success may have stored something else; they
// come through the subscription only.
func (h *Hub) Tap(store chat.Store) chat.Store { return tapStore{Store: store, hub: h} }

type tapStore struct {
	chat.Store
	hub *Hub
}

func (t tapStore) Append(ctx context.Context, stream string, expected domain.ExpectedVersion, events ...domain.EventData) (domain.AppendResult, error) {
	if ca, ok := t.Store.(chainedAppender); ok {
		// The events as stored carry their chain hashes, which frames show.
		res, chained, err := ca.AppendChained(ctx, stream, expected, events...)
		if err == nil {
			t.hub.local(stream, res, chained)
		}
		return res, err
	}
	res, err := t.Store.Append(ctx, stream, expected, events...)
	if err == nil {
		t.hub.local(stream, res, events)
	}
	return res, err
}

// chainedAppender is a store that returns the events it appended with
// their chain fields (audit.ChainingStore).
type chainedAppender interface {
	AppendChained(ctx context.Context, stream string, expected domain.ExpectedVersion, events ...domain.EventData) (domain.AppendResult, []domain.EventData, error)
}

// local hands the chunks of a successful append to the room's connections.
func (h *Hub) local(stream string, res domain.AppendResult, events []domain.EventData) {
	id, ok := room.ParseStream(stream)
	if !ok || len(events) == 0 {
		return
	}
	for _, ev := range events {
		if !room.IsChunk(ev.Type) {
			return
		}
	}
	targets := h.targets(id)
	if len(targets) == 0 {
		return
	}
	first := res.Version - int64(len(events)) + 1
	for i, ev := range events {
		f, ok, err := eventFrame(domain.RecordedEvent{ID: ev.ID, Stream: stream, Version: first + int64(i), Type: ev.Type, Data: ev.Data, Metadata: ev.Metadata})
		if err != nil || !ok {
			return // the subscription will bring it
		}
		for _, c := range targets {
			c.fast(f)
		}
	}
}
