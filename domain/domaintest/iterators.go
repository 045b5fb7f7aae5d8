package domaintest

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/parleychat/parley/domain"
)

// testPagingIterators checks domain.StreamEvents and domain.AllEvents over
// the store: pages of a few events each, forward, backward and from the
// middle, a prefix, and an early break.
func testPagingIterators(t *testing.T, s domain.EventStore, prefix string) {
	stream := prefix + "room-1"
	var want []domain.UUID
	for range 3 { // 9 events in appends of 3, pages of 2
		evs := Events(t, "MessagePosted", 3)
		mustAppend(t, s, stream, domain.Any(), evs...)
		want = append(want, appendedIDs(evs)...)
	}
	mustAppend(t, s, "x"+prefix+"other", domain.Any(), Events(t, "Other", 2)...)

	collect := func(seq func(func(domain.RecordedEvent, error) bool), stopAfter int) []domain.UUID {
		t.Helper()
		var got []domain.UUID
		for ev, err := range seq {
			if err != nil {
				t.Fatalf("after %d events: %v", len(got), err)
			}
			got = append(got, ev.ID)
			if len(got) == stopAfter {
				break
			}
		}
		return got
	}
	ctx := t.Context()
	check := func(name string, got, want []domain.UUID) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s yielded %d events %v\nwant %d: %v", name, len(got), got, len(want), want)
		}
	}
	check("StreamEvents forward", collect(domain.StreamEvents(ctx, s, stream, domain.ReadStreamOptions{Limit: 2}), 0), want)
	check("StreamEvents from version 5", collect(domain.StreamEvents(ctx, s, stream, domain.ReadStreamOptions{From: 5, Limit: 2}), 0), want[5:])
	back := slices.Clone(want)
	slices.Reverse(back)
	check("StreamEvents backward", collect(domain.StreamEvents(ctx, s, stream,
		domain.ReadStreamOptions{Direction: domain.Backward, From: domain.EndOfStream, Limit: 2}), 0), back)
	check("StreamEvents broken off", collect(domain.StreamEvents(ctx, s, stream, domain.ReadStreamOptions{Limit: 2}), 3), want[:3])
	check("AllEvents", collect(domain.AllEvents(ctx, s, domain.ReadAllOptions{Limit: 2, StreamPrefix: prefix}), 0), want)

	n := 0
	for _, err := range domain.StreamEvents(ctx, s, prefix+"missing", domain.ReadStreamOptions{Limit: 2}) {
		n++
		if !errors.Is(err, domain.ErrStreamNotFound) {
			t.Errorf("StreamEvents of a missing stream yielded %v, want a not-found error", err)
		}
	}
	if n != 1 {
		t.Errorf("StreamEvents of a missing stream yielded %d times, want once", n)
	}
}

func appendedIDs(evs []domain.EventData) []domain.UUID {
	out := make([]domain.UUID, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}
