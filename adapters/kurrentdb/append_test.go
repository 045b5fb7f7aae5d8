package kurrentdb

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/domaintest"
)

const (
	kib = 1 << 10
	mib = 1 << 20
)

// sized returns an event whose appendSize is exactly n bytes (n >= 4).
func sized(t *testing.T, n int) domain.EventData {
	t.Helper()
	ev := domain.EventData{ID: domaintest.NewID(t), Type: "T", Data: json.RawMessage(`"` + strings.Repeat("x", n-4) + `"`)}
	if got := appendSize(ev); got != n {
		t.Fatalf("sized(%d) built an event of %d bytes", n, got)
	}
	return ev
}

func TestAppendSize(t *testing.T) {
	ev := domain.EventData{Type: "MessagePosted", Data: json.RawMessage(`{"n":1}`), Metadata: json.RawMessage(`{}`)}
	// The server counts the type twice (UTF-16), so a domain.MaxEventSize
	// event is over a server limit of 1 MiB (the default before 24.10).
	if got, want := appendSize(ev), 7+2+2*13; got != want {
		t.Errorf("appendSize = %d, want %d", got, want)
	}
	big := domaintest.SizedEvent(t, domain.MaxEventSize)
	if got := appendSize(big); got <= mib {
		t.Errorf("appendSize of a MaxEventSize event = %d, want over %d", got, mib)
	}
}

func TestSplitAppend(t *testing.T) {
	tests := []struct {
		name  string
		sizes []int // appendSize of each event
		limit int
		want  []int // events per group
	}{
		{"one small event", []int{100}, mib, []int{1}},
		{"many small events", []int{100, 100, 100, 100, 100, 100, 100, 100, 100, 100}, mib, []int{10}},
		{"exact fit", []int{512 * kib, 512 * kib}, mib, []int{2}},
		{"one byte over", []int{512 * kib, 512*kib + 1}, mib, []int{1, 1}},
		{"three 400 KiB events", []int{400 * kib, 400 * kib, 400 * kib}, mib, []int{2, 1}},
		{"1 MiB events", []int{mib, mib, mib}, mib, []int{1, 1, 1}},
		{"small after 1 MiB", []int{mib, 10}, mib, []int{1, 1}},
		{"over the limit alone", []int{10, 20, mib + 400, 30, 40}, mib, []int{2, 1, 2}},
		{"over the limit first", []int{2 * mib, 10}, mib, []int{1, 1}},
		{"larger server limit", []int{mib, mib, mib, mib}, 2 * mib, []int{2, 2}},
		{"mixed", []int{300 * kib, 300 * kib, 300 * kib, 300 * kib, 100, 900 * kib}, mib, []int{3, 2, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			events := make([]domain.EventData, len(tc.sizes))
			for i, n := range tc.sizes {
				events[i] = sized(t, n)
			}
			groups := splitAppend(events, tc.limit)
			var got []int
			var flat []domain.UUID
			for _, g := range groups {
				got = append(got, len(g))
				total := 0
				for _, ev := range g {
					total += appendSize(ev)
					flat = append(flat, ev.ID)
				}
				if total > tc.limit && len(g) > 1 {
					t.Errorf("group of %d events is %d bytes, over the %d limit", len(g), total, tc.limit)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("group sizes mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(ids(events), flat); diff != "" {
				t.Errorf("groups reorder or lose events (-want +got):\n%s", diff)
			}
		})
	}
}

// The contract suite's large batch must split into requests a default
// server accepts, and the same way every time.
func TestSplitAppendContractBatch(t *testing.T) {
	batch := []domain.EventData{
		domaintest.SizedEvent(t, domain.MaxEventSize),
		domaintest.SizedEvent(t, domain.MaxEventSize/2),
		domaintest.SizedEvent(t, domain.MaxEventSize),
	}
	for _, tc := range []struct {
		limit int
		want  []int
	}{
		{mib, []int{1, 1, 1}},
		{2 * mib, []int{2, 1}},
		{DefaultMaxAppendSize, []int{3}},
	} {
		var got []int
		for _, g := range splitAppend(batch, tc.limit) {
			got = append(got, len(g))
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("limit %d: group sizes mismatch (-want +got):\n%s", tc.limit, diff)
		}
	}
}

func TestSplitAppendGroupsDoNotAlias(t *testing.T) {
	events := []domain.EventData{sized(t, 600*kib), sized(t, 600*kib)}
	groups := splitAppend(events, mib)
	_ = append(groups[0], sized(t, 10))
	if events[1].ID != groups[1][0].ID {
		t.Errorf("appending to the first group overwrote the second event")
	}
}

func ids(evs []domain.EventData) []domain.UUID {
	out := make([]domain.UUID, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

func TestPlanRetry(t *testing.T) {
	e := domaintest.Events(t, "MessagePosted", 3) // the append
	o := domaintest.Events(t, "Other", 4)         // other events in the stream
	fresh := domaintest.Events(t, "MessagePosted", 1)[0]

	// stream builds a tail: the given events at consecutive versions from
	// first, with positions derived from the versions.
	stream := func(first int64, evs ...domain.EventData) ([]domain.RecordedEvent, int64) {
		out := make([]domain.RecordedEvent, len(evs))
		for i, ev := range evs {
			v := first + int64(i)
			out[i] = domain.RecordedEvent{ID: ev.ID, Type: ev.Type, Stream: "s", Version: v, Position: domain.Position{Commit: uint64(100 * (v + 1)), Prepare: uint64(100*(v+1) - 1)}}
		}
		return out, first + int64(len(evs)) - 1
	}
	one := [][]domain.EventData{e}                 // the append in one request
	split := [][]domain.EventData{e[:2], e[2:]}    // split after two events
	oddSplit := [][]domain.EventData{e[:1], e[1:]} // split after one event
	posOf := func(v int64) domain.Position {
		return domain.Position{Commit: uint64(100 * (v + 1)), Prepare: uint64(100*(v+1) - 1)}
	}
	const (
		partial = "some of the event IDs are already in the stream and some are not"
		order   = "the event IDs are already in the stream in another order"
		moved   = "the event IDs are already in the stream at other versions"
	)

	type tailFn func() ([]domain.RecordedEvent, int64)
	tests := []struct {
		name     string
		expected domain.ExpectedVersion
		events   []domain.EventData
		groups   [][]domain.EventData
		tail     tailFn
		want     retryPlan
	}{
		{"missing stream", domain.NoStream(), e, one,
			func() ([]domain.RecordedEvent, int64) { return nil, domain.NoVersion }, retryPlan{}},
		{"no overlap", domain.Exact(1), e, one,
			func() ([]domain.RecordedEvent, int64) { return stream(0, o[0], o[1]) }, retryPlan{}},
		{"retry exact", domain.Exact(1), e, one,
			func() ([]domain.RecordedEvent, int64) { return stream(0, o[0], o[1], e[0], e[1], e[2]) },
			retryPlan{done: true, result: domain.AppendResult{Version: 4, Position: posOf(4)}}},
		{"retry any", domain.Any(), e, one,
			func() ([]domain.RecordedEvent, int64) { return stream(0, o[0], o[1], e[0], e[1], e[2]) },
			retryPlan{done: true, result: domain.AppendResult{Version: 4, Position: posOf(4)}}},
		{"retry stream exists", domain.StreamExists(), e, one,
			func() ([]domain.RecordedEvent, int64) { return stream(0, o[0], o[1], e[0], e[1], e[2]) },
			retryPlan{done: true, result: domain.AppendResult{Version: 4, Position: posOf(4)}}},
		{"retry no stream", domain.NoStream(), e, one,
			func() ([]domain.RecordedEvent, int64) { return stream(0, e[0], e[1], e[2]) },
			retryPlan{done: true, result: domain.AppendResult{Version: 2, Position: posOf(2)}}},
		{"retry after others appended", domain.Exact(0), e, one,
			func() ([]domain.RecordedEvent, int64) { return stream(0, o[0], e[0], e[1], e[2], o[1], o[2]) },
			retryPlan{done: true, result: domain.AppendResult{Version: 3, Position: posOf(3)}}},
		{"stored at another version", domain.Exact(0), e, one,
			func() ([]domain.RecordedEvent, int64) { return stream(0, o[0], o[1], e[0], e[1], e[2]) },
			retryPlan{conflict: moved}},
		{"no stream but stored later", domain.NoStream(), e, one,
			func() ([]domain.RecordedEvent, int64) { return stream(0, o[0], e[0], e[1], e[2]) },
			retryPlan{conflict: moved}},
		{"partial overlap at the end", domain.Exact(4), []domain.EventData{e[2], fresh}, [][]domain.EventData{{e[2], fresh}},
			func() ([]domain.RecordedEvent, int64) { return stream(0, o[0], o[1], e[0], e[1], e[2]) },
			retryPlan{conflict: partial}},
		{"partial overlap, new event first", domain.Any(), []domain.EventData{fresh, e[2]}, [][]domain.EventData{{fresh, e[2]}},
			func() ([]domain.RecordedEvent, int64) { return stream(0, e[0], e[1], e[2]) },
			retryPlan{conflict: partial}},
		{"another order", domain.Exact(-1), e, one,
			func() ([]domain.RecordedEvent, int64) { return stream(0, e[1], e[0], e[2]) },
			retryPlan{conflict: order}},
		{"not consecutive", domain.Any(), e, one,
			func() ([]domain.RecordedEvent, int64) { return stream(0, e[0], e[1], o[0], e[2]) },
			retryPlan{conflict: order}},
		{"split append cut short", domain.Exact(0), e, split,
			func() ([]domain.RecordedEvent, int64) { return stream(0, o[0], e[0], e[1]) },
			retryPlan{skip: 2, after: 2}},
		{"split append cut short, no stream", domain.NoStream(), e, split,
			func() ([]domain.RecordedEvent, int64) { return stream(0, e[0], e[1]) },
			retryPlan{skip: 2, after: 1}},
		{"split append cut short, stream moved on", domain.Exact(0), e, split,
			func() ([]domain.RecordedEvent, int64) { return stream(0, o[0], e[0], e[1], o[1]) },
			retryPlan{conflict: partial}},
		{"prefix not at a request boundary", domain.Exact(0), e, oddSplit,
			func() ([]domain.RecordedEvent, int64) { return stream(0, o[0], e[0], e[1]) },
			retryPlan{conflict: partial}},
		{"prefix of an unsplit append", domain.Exact(0), e, one,
			func() ([]domain.RecordedEvent, int64) { return stream(0, o[0], e[0], e[1]) },
			retryPlan{conflict: partial}},
		{"prefix at the wrong version", domain.Exact(1), e, split,
			func() ([]domain.RecordedEvent, int64) { return stream(0, o[0], e[0], e[1]) },
			retryPlan{conflict: partial}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tail, current := tc.tail()
			got := planRetry(tc.expected, tc.events, tc.groups, tail, current)
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(retryPlan{})); diff != "" {
				t.Errorf("planRetry(%s) mismatch (-want +got):\n%s", tc.expected, diff)
			}
		})
	}
}

func TestGroupBoundary(t *testing.T) {
	e := domaintest.Events(t, "E", 6)
	groups := [][]domain.EventData{e[:2], e[2:3], e[3:]}
	var got []int
	for k := 0; k <= 7; k++ {
		if groupBoundary(groups, k) {
			got = append(got, k)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint([]int{2, 3, 6}) {
		t.Errorf("boundaries = %v, want [2 3 6]", got)
	}
}
