package domain_test

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/domain"
)

// pagedLog is one stream of n events (version v at position v+1/0) that
// records the reads it serves and fails the read numbered failRead (from
// 1) with errRead.
type pagedLog struct {
	n        int64
	failRead int
	reads    []string // "from" of each stream read, "after" of each log read
}

var errRead = errors.New("read failed")

func (l *pagedLog) ReadStream(_ context.Context, stream string, opts domain.ReadStreamOptions) ([]domain.RecordedEvent, error) {
	l.reads = append(l.reads, fmtFrom(opts.From, opts.Limit))
	if len(l.reads) == l.failRead {
		return nil, errRead
	}
	if l.n == 0 {
		return nil, &domain.StreamNotFoundError{Stream: stream}
	}
	var out []domain.RecordedEvent
	if opts.Direction == domain.Backward {
		for v := min(opts.From, l.n-1); v >= 0 && len(out) < opts.Limit; v-- {
			out = append(out, l.event(v))
		}
		return out, nil
	}
	for v := opts.From; v < l.n && len(out) < opts.Limit; v++ {
		out = append(out, l.event(v))
	}
	return out, nil
}

func (l *pagedLog) ReadAll(_ context.Context, opts domain.ReadAllOptions) ([]domain.RecordedEvent, error) {
	l.reads = append(l.reads, opts.After.String()+"/"+fmtFrom(0, opts.Limit)+opts.StreamPrefix)
	if len(l.reads) == l.failRead {
		return nil, errRead
	}
	var out []domain.RecordedEvent
	for v := int64(opts.After.Commit); v < l.n && len(out) < opts.Limit; v++ {
		out = append(out, l.event(v))
	}
	return out, nil
}

func (l *pagedLog) HeadPosition(context.Context) (domain.Position, error) { return domain.Start, nil }

func (l *pagedLog) event(v int64) domain.RecordedEvent {
	return domain.RecordedEvent{Stream: "s", Version: v, Position: domain.Position{Commit: uint64(v + 1)}}
}

func fmtFrom(from int64, limit int) string {
	if from == domain.EndOfStream {
		return "end:" + itoa(int64(limit))
	}
	return itoa(from) + ":" + itoa(int64(limit))
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// drain collects a sequence's events and errors, stopping after stopAfter
// events when it is positive; cancel, when set, is called after the first.
func drain(seq func(func(domain.RecordedEvent, error) bool), stopAfter int, cancel func()) (versions []int64, errs []error) {
	for ev, err := range seq {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		versions = append(versions, ev.Version)
		if cancel != nil && len(versions) == 1 {
			cancel()
		}
		if stopAfter > 0 && len(versions) == stopAfter {
			break
		}
	}
	return versions, errs
}

func TestStreamEvents(t *testing.T) {
	tests := []struct {
		name      string
		n         int64
		opts      domain.ReadStreamOptions
		failRead  int
		stopAfter int
		cancel    bool
		want      []int64
		wantErr   error
		wantReads []string
	}{
		{name: "forward in pages", n: 5, opts: domain.ReadStreamOptions{Limit: 2},
			want: []int64{0, 1, 2, 3, 4}, wantReads: []string{"0:2", "2:2", "4:2"}},
		{name: "a full last page reads one more", n: 4, opts: domain.ReadStreamOptions{Limit: 2},
			want: []int64{0, 1, 2, 3}, wantReads: []string{"0:2", "2:2", "4:2"}},
		{name: "from the middle", n: 5, opts: domain.ReadStreamOptions{From: 3, Limit: 2},
			want: []int64{3, 4}, wantReads: []string{"3:2", "5:2"}},
		{name: "zero limit is the default", n: 3, opts: domain.ReadStreamOptions{},
			want: []int64{0, 1, 2}, wantReads: []string{"0:1000"}},
		{name: "backward from the end", n: 5, opts: domain.ReadStreamOptions{Direction: domain.Backward, From: domain.EndOfStream, Limit: 2},
			want: []int64{4, 3, 2, 1, 0}, wantReads: []string{"end:2", "2:2", "0:2"}},
		{name: "backward stops at version 0", n: 4, opts: domain.ReadStreamOptions{Direction: domain.Backward, From: domain.EndOfStream, Limit: 2},
			want: []int64{3, 2, 1, 0}, wantReads: []string{"end:2", "1:2"}},
		{name: "break reads no further page", n: 9, opts: domain.ReadStreamOptions{Limit: 2}, stopAfter: 3,
			want: []int64{0, 1, 2}, wantReads: []string{"0:2", "2:2"}},
		{name: "an error mid-way ends it once", n: 9, opts: domain.ReadStreamOptions{Limit: 2}, failRead: 2,
			want: []int64{0, 1}, wantErr: errRead, wantReads: []string{"0:2", "2:2"}},
		{name: "a missing stream", n: 0, opts: domain.ReadStreamOptions{Limit: 2},
			wantErr: domain.ErrStreamNotFound, wantReads: []string{"0:2"}},
		{name: "ctx ending between pages", n: 9, opts: domain.ReadStreamOptions{Limit: 2}, cancel: true,
			want: []int64{0, 1}, wantErr: context.Canceled, wantReads: []string{"0:2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &pagedLog{n: tt.n, failRead: tt.failRead}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var stop func()
			if tt.cancel {
				stop = cancel
			}
			got, errs := drain(domain.StreamEvents(ctx, l, "s", tt.opts), tt.stopAfter, stop)
			checkSeq(t, got, errs, l.reads, tt.want, tt.wantErr, tt.wantReads)
		})
	}
}

func TestAllEvents(t *testing.T) {
	tests := []struct {
		name      string
		n         int64
		opts      domain.ReadAllOptions
		failRead  int
		stopAfter int
		want      []int64
		wantErr   error
		wantReads []string
	}{
		{name: "in pages after the last position", n: 5, opts: domain.ReadAllOptions{Limit: 2, StreamPrefix: "room-"},
			want: []int64{0, 1, 2, 3, 4}, wantReads: []string{"0/0/0:2room-", "2/0/0:2room-", "4/0/0:2room-"}},
		{name: "after a position", n: 5, opts: domain.ReadAllOptions{After: domain.Position{Commit: 3}, Limit: 2},
			want: []int64{3, 4}, wantReads: []string{"3/0/0:2", "5/0/0:2"}},
		{name: "break reads no further page", n: 9, opts: domain.ReadAllOptions{Limit: 2}, stopAfter: 2,
			want: []int64{0, 1}, wantReads: []string{"0/0/0:2"}},
		{name: "an error mid-way ends it once", n: 9, opts: domain.ReadAllOptions{Limit: 2}, failRead: 3,
			want: []int64{0, 1, 2, 3}, wantErr: errRead, wantReads: []string{"0/0/0:2", "2/0/0:2", "4/0/0:2"}},
		{name: "an empty log", opts: domain.ReadAllOptions{}, wantReads: []string{"0/0/0:1000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &pagedLog{n: tt.n, failRead: tt.failRead}
			got, errs := drain(domain.AllEvents(t.Context(), l, tt.opts), tt.stopAfter, nil)
			checkSeq(t, got, errs, l.reads, tt.want, tt.wantErr, tt.wantReads)
		})
	}
}

func checkSeq(t *testing.T, got []int64, errs []error, reads []string, want []int64, wantErr error, wantReads []string) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("versions yielded (-want +got):\n%s", diff)
	}
	switch {
	case wantErr == nil && len(errs) > 0:
		t.Errorf("errors yielded: %v, want none", errs)
	case wantErr != nil && (len(errs) != 1 || !errors.Is(errs[0], wantErr)):
		t.Errorf("errors yielded: %v, want %v once", errs, wantErr)
	}
	if diff := cmp.Diff(wantReads, reads); diff != "" {
		t.Errorf("reads (-want +got):\n%s", diff)
	}
}

func TestStreamEventsRangesAgainFromTheStart(t *testing.T) {
	l := &pagedLog{n: 5}
	seq := domain.StreamEvents(t.Context(), l, "s", domain.ReadStreamOptions{From: 1, Limit: 2})
	first, _ := drain(seq, 0, nil)
	again, _ := drain(seq, 0, nil)
	if diff := cmp.Diff(first, again); diff != "" || len(first) != 4 {
		t.Errorf("a second range yielded %v, the first %v; want versions 1 to 4 both times", again, first)
	}
	all := domain.AllEvents(t.Context(), l, domain.ReadAllOptions{Limit: 2})
	first, _ = drain(all, 0, nil)
	again, _ = drain(all, 0, nil)
	if diff := cmp.Diff(first, again); diff != "" || len(first) != 5 {
		t.Errorf("AllEvents: a second range yielded %v, the first %v; want all 5 both times", again, first)
	}
}
