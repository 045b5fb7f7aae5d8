package domain_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/domain"
)

// scriptedAppender answers appends with errs in turn, then succeeds, and
// records the expectations it was given.
type scriptedAppender struct {
	errs     []error
	expected []string
}

func (a *scriptedAppender) Append(_ context.Context, stream string, exp domain.ExpectedVersion, events ...domain.EventData) (domain.AppendResult, error) {
	a.expected = append(a.expected, exp.String())
	if len(a.errs) > 0 {
		err := a.errs[0]
		a.errs = a.errs[1:]
		return domain.AppendResult{}, err
	}
	return domain.AppendResult{Version: 100}, nil
}

func conflictAt(v int64) error {
	return &domain.ConflictError{Stream: "room-1", Expected: domain.Exact(v), Actual: v + 1}
}

func TestAppendDecided(t *testing.T) {
	down := errors.New("store down")
	refused := errors.New("busy")
	ev := domain.EventData{ID: domain.MustParseUUID("00000000-0000-4000-8000-000000000001"), Type: "T", Data: []byte(`{}`)}
	tests := []struct {
		name     string
		errs     []error // the appends' errors, in turn
		attempts int
		// decideErr, when set, is what decide returns on round failRound.
		decideErr error
		failRound int
		nothingAt int // decide decides nothing on this round (1-based); 0 never
		wantErr   string
		wantIs    error
		wantExp   []string // the expectations appended at
		wantSeen  []bool   // per round: decide was given a conflict
		wantRes   int64
	}{
		{name: "first append succeeds", attempts: 3, wantExp: []string{"version 0"}, wantSeen: []bool{false}, wantRes: 100},
		{name: "conflicts, then decides again and succeeds", errs: []error{conflictAt(0), conflictAt(1)}, attempts: 3,
			wantExp: []string{"version 0", "version 1", "version 2"}, wantSeen: []bool{false, true, true}, wantRes: 100},
		{name: "gives up after attempts", errs: []error{conflictAt(0), conflictAt(1), conflictAt(2)}, attempts: 3,
			wantErr: "append to room-1: still conflicting after 3 attempts", wantIs: domain.ErrConflict,
			wantExp: []string{"version 0", "version 1", "version 2"}, wantSeen: []bool{false, true, true}},
		{name: "zero attempts is one", errs: []error{conflictAt(0)}, attempts: 0,
			wantErr: "still conflicting after 1 attempts", wantIs: domain.ErrConflict, wantExp: []string{"version 0"}, wantSeen: []bool{false}},
		{name: "another error is not retried", errs: []error{down}, attempts: 3, wantErr: "store down", wantIs: down,
			wantExp: []string{"version 0"}, wantSeen: []bool{false}},
		{name: "decide's error ends it", errs: []error{conflictAt(0)}, attempts: 3, decideErr: refused, failRound: 2,
			wantErr: "busy", wantIs: refused, wantExp: []string{"version 0"}, wantSeen: []bool{false, true}},
		{name: "deciding nothing appends nothing", attempts: 3, nothingAt: 1, wantSeen: []bool{false}},
		{name: "deciding nothing after a conflict", errs: []error{conflictAt(0)}, attempts: 3, nothingAt: 2,
			wantExp: []string{"version 0"}, wantSeen: []bool{false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &scriptedAppender{errs: tt.errs}
			var seen []bool
			res, err := domain.AppendDecided(t.Context(), a, "room-1", tt.attempts, func(_ context.Context, conflict error) ([]domain.EventData, domain.ExpectedVersion, error) {
				seen = append(seen, conflict != nil)
				round := len(seen)
				if conflict != nil && !errors.Is(conflict, domain.ErrConflict) {
					t.Errorf("round %d: decide given %v, not the conflict", round, conflict)
				}
				if round == tt.failRound {
					return nil, domain.Any(), tt.decideErr
				}
				if round == tt.nothingAt {
					return nil, domain.Any(), nil
				}
				return []domain.EventData{ev}, domain.Exact(int64(round - 1)), nil
			})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("AppendDecided: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, tt.wantIs)):
				t.Fatalf("AppendDecided error = %v, want one containing %q and matching %v", err, tt.wantErr, tt.wantIs)
			}
			if res.Version != tt.wantRes {
				t.Errorf("result version = %d, want %d", res.Version, tt.wantRes)
			}
			if diff := cmp.Diff(tt.wantExp, a.expected); diff != "" {
				t.Errorf("appended at (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantSeen, seen); diff != "" {
				t.Errorf("decide given a conflict, per round (-want +got):\n%s", diff)
			}
		})
	}
}
