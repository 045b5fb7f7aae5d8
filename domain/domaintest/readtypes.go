package domaintest

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/parleychat/parley/domain"
)

// testReadTypes checks ReadStreamOptions.Types: only events of those
// types, at their versions, the page's Limit counting them, forward and
// backward, across runs of other events longer than any page a store
// might read at a time to filter them itself; and the paging iterator
// over such reads.
func testReadTypes(t *testing.T, s domain.EventStore, prefix string) {
	stream := prefix + "room-1"
	// Versions: A at 0, 300 fillers, B at 301, 4 fillers, A at 306, a filler.
	var all []domain.EventData
	for _, part := range [][]domain.EventData{Events(t, "A", 1), Events(t, "Filler", 300), Events(t, "B", 1),
		Events(t, "Filler", 4), Events(t, "A", 1), Events(t, "Filler", 1)} {
		mustAppend(t, s, stream, domain.Any(), part...)
		all = append(all, part...)
	}
	ab := []string{"A", "B"}
	tests := []struct {
		dir   domain.Direction
		from  int64
		limit int
		types []string
		want  []int64
	}{
		{domain.Forward, 0, 0, ab, []int64{0, 301, 306}},
		{domain.Forward, 1, 1, ab, []int64{301}},
		{domain.Forward, 302, 0, ab, []int64{306}},
		{domain.Forward, 307, 0, ab, []int64{}},
		{domain.Forward, 0, 0, []string{"B"}, []int64{301}},
		{domain.Forward, 0, 0, []string{"Nothing"}, []int64{}},
		{domain.Forward, 299, 3, []string{"Filler", "B"}, []int64{299, 300, 301}},
		{domain.Backward, domain.EndOfStream, 2, ab, []int64{306, 301}},
		{domain.Backward, 305, 1, ab, []int64{301}},
		{domain.Backward, 300, 0, ab, []int64{0}},
		{domain.Backward, 1000, 1, []string{"B"}, []int64{301}},
	}
	for _, tc := range tests {
		opts := domain.ReadStreamOptions{Direction: tc.dir, From: tc.from, Limit: tc.limit, Types: tc.types}
		got := mustRead(t, s, stream, opts)
		if fmt.Sprint(versions(got)) != fmt.Sprint(tc.want) {
			t.Errorf("read %s from %d limit %d of types %v = versions %v, want %v", tc.dir, tc.from, tc.limit, tc.types, versions(got), tc.want)
		}
		for _, ev := range got {
			checkSame(t, ev, all[ev.Version], stream, ev.Version)
		}
	}

	// Paging a page of one at a time walks the gaps and stops at the end.
	for _, dir := range []domain.Direction{domain.Forward, domain.Backward} {
		want := []int64{0, 301, 306}
		opts := domain.ReadStreamOptions{Direction: dir, Limit: 1, Types: ab}
		if dir == domain.Backward {
			opts.From = domain.EndOfStream
			slices.Reverse(want)
		}
		var got []int64
		for ev, err := range domain.StreamEvents(t.Context(), s, stream, opts) {
			if err != nil {
				t.Fatalf("StreamEvents %s of types %v: %v", dir, ab, err)
			}
			got = append(got, ev.Version)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("StreamEvents %s of types %v, pages of 1 = versions %v, want %v", dir, ab, got, want)
		}
	}

	_, err := s.ReadStream(t.Context(), prefix+"nothing", domain.ReadStreamOptions{Types: ab})
	if !errors.Is(err, domain.ErrStreamNotFound) {
		t.Errorf("read of types %v of a missing stream: err = %v, want a *StreamNotFoundError", ab, err)
	}
}
