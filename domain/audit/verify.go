package audit

import (
	"context"
	"fmt"
	"sort"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

// verifyPage is how many events VerifyStream reads at a time.
const verifyPage = domain.DefaultReadLimit

// Head is a point on a stream's chain: an event's version and hash.
type Head struct {
	Version int64  `json:"version"`
	Hash    string `json:"hash"`
}

// Kinds of Break.
const (
	// BreakGap: a version is missing (an event was deleted).
	BreakGap = "gap"
	// BreakOrder: versions out of order, repeated, or under another stream.
	BreakOrder = "order"
	// BreakUnchained: an event without chain fields after a chained one
	// (the fields were removed or their form edited).
	BreakUnchained = "unchained"
	// BreakLink: prev_hash is not the previous event's hash (an event
	// before it was changed, removed or reordered, or this one moved).
	BreakLink = "link"
	// BreakContent: the event's content does not hash to its hash field
	// (its data, type, ID, metadata, stream or version was changed).
	BreakContent = "content"
	// BreakAnchor: the event at an exported head's version has another
	// hash (the chain was rewritten at or before that version).
	BreakAnchor = "anchor"
	// BreakTruncated: the stream ends before an exported head's version
	// (events were deleted from its end).
	BreakTruncated = "truncated"
)

// Break is the first place a stream's chain does not hold.
type Break struct {
	Version int64
	// Kind is one of the Break* constants.
	Kind   string
	Reason string
}

func (b *Break) String() string { return fmt.Sprintf("version %d: %s", b.Version, b.Reason) }

// Result is what VerifyStream found.
type Result struct {
	Stream string
	// Events is how many events were checked: all of them, or up to and
	// including the first broken one.
	Events int
	// Unchained counts the leading events that carry no chain fields
	// (written before the chain store was in place). They are covered by
	// the first chained event's link, but a stream with no chained event
	// at all proves nothing.
	Unchained int
	// Head is the last event checked before any break: its version and
	// hash (domain.NoVersion and "" when there is none).
	Head Head
	// FirstBroken is nil when the chain holds.
	FirstBroken *Break
	// Erased is set when an event checked was the room's RoomErased: its
	// content was crypto-shredded, which the chain, over the stored
	// (sealed) bytes, does not see as a change.
	Erased bool
}

// OK reports whether the chain holds.
func (r Result) OK() bool { return r.FirstBroken == nil }

// VerifyStream reads stream from its start and recomputes its chain,
// stopping at the first break. Each anchor (a head exported earlier) must
// still be on the chain: the event at its version must have its hash. A
// stream with no events is a *domain.StreamNotFoundError; errors are read
// errors only, a broken chain is a Result.
func VerifyStream(ctx context.Context, r domain.StreamReader, stream string, anchors ...Head) (Result, error) {
	res := Result{Stream: stream, Head: Head{Version: domain.NoVersion}}
	want := make(map[int64]string, len(anchors))
	for _, a := range anchors {
		want[a.Version] = a.Hash
	}
	brk := func(v int64, kind, format string, args ...any) (Result, error) {
		res.FirstBroken = &Break{Version: v, Kind: kind, Reason: fmt.Sprintf(format, args...)}
		return res, nil
	}
	prev := Genesis
	next := int64(0)
	chained := false
	for ev, err := range domain.StreamEvents(ctx, r, stream, domain.ReadStreamOptions{From: next, Limit: verifyPage}) {
		if err != nil {
			return res, fmt.Errorf("audit: verify %s from version %d: %w", stream, next, err)
		}
		res.Events++
		v := ev.Version
		switch {
		case v > next:
			if next == 0 {
				return brk(next, BreakGap, "the stream starts at version %d: versions 0 to %d are missing (deleted)", v, v-1)
			}
			return brk(next, BreakGap, "version %d is missing: the stream goes from version %d to %d (an event was deleted)", next, next-1, v)
		case v < next:
			return brk(v, BreakOrder, "version %d comes after version %d", v, next-1)
		case ev.Stream != stream:
			return brk(v, BreakOrder, "the event read from %s says it belongs to %s", stream, ev.Stream)
		}
		l := inspect(ev, prev)
		switch {
		case !l.chained && chained:
			return brk(v, BreakUnchained, "the event has no chain fields, though the events before it do (its metadata's prev_hash and hash were removed or their form edited)")
		case !l.chained:
			res.Unchained++
		case l.prev != prev:
			if v == 0 {
				return brk(v, BreakLink, "prev_hash is %s, not the genesis hash (zeros)", l.prev)
			}
			return brk(v, BreakLink, "prev_hash %s is not the hash %s of version %d (an earlier event was changed, removed or reordered)", l.prev, prev, v-1)
		case l.computed != l.stored:
			return brk(v, BreakContent, "the event's content hashes to %s, not to its hash %s (its data, type, ID or metadata was changed)", l.computed, l.stored)
		default:
			chained = true
		}
		prev = l.computed
		if h, ok := want[v]; ok && h != prev.String() {
			return brk(v, BreakAnchor, "the hash is %s, not %s as exported (the chain was rewritten at or before this version)", prev, h)
		}
		res.Head = Head{Version: v, Hash: prev.String()}
		res.Erased = res.Erased || ev.Type == room.TypeRoomErased
		next = v + 1
	}
	var gone []int64
	for v := range want {
		if v >= next {
			gone = append(gone, v)
		}
	}
	if len(gone) > 0 {
		sort.Slice(gone, func(i, j int) bool { return gone[i] < gone[j] })
		return brk(gone[0], BreakTruncated, "the stream ends at version %d, before the exported head at version %d (events were deleted from its end)", next-1, gone[0])
	}
	return res, nil
}
