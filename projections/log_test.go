package projections_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/projections"
)

// namedLog is a fakeLog that names itself.
type namedLog struct {
	*fakeLog
	id string
}

func (l *namedLog) LogID(context.Context) (string, error) { return l.id, nil }

// bindingProjection is a fakeProjection that records the log of its
// checkpoint.
type bindingProjection struct {
	fakeProjection
	bmu   sync.Mutex
	bound string
}

func (p *bindingProjection) BindLog(_ context.Context, log string) (string, error) {
	p.bmu.Lock()
	defer p.bmu.Unlock()
	if p.bound == "" {
		p.bound = log
	}
	return p.bound, nil
}

func TestACheckpointOfAnotherLogIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name        string
		store, prev string // the store's log; the one the checkpoint records before
		wantErr     bool
	}{
		{"a checkpoint that records no log is bound to the store's", "postgres:1/2", "", false},
		{"the same log", "postgres:1/2", "postgres:1/2", false},
		{"another log", "kurrentdb:abc", "postgres:1/2", true},
		{"a store that cannot tell", "", "postgres:1/2", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := &namedLog{fakeLog: newFakeLog(10), id: tc.store}
			evs := log.add("room-1", "room-2")
			check := func(t *testing.T, what string, err error, p *bindingProjection) {
				t.Helper()
				var wl *projections.WrongLogError
				switch {
				case tc.wantErr && (!errors.As(err, &wl) || wl.Bound != tc.prev || wl.Log != tc.store):
					t.Fatalf("%s = %v, want a WrongLogError naming %q and %q", what, err, tc.prev, tc.store)
				case tc.wantErr:
					if applied, _, _ := p.snapshot(); len(applied) > 0 {
						t.Errorf("%s applied %d events of another log", what, len(applied))
					}
					if !strings.Contains(err.Error(), tc.prev) || !strings.Contains(err.Error(), tc.store) {
						t.Errorf("%s: %q does not name both logs", what, err)
					}
				case err != nil:
					t.Fatalf("%s = %v", what, err)
				}
				want := tc.prev
				if want == "" {
					want = tc.store
				}
				p.bmu.Lock()
				bound := p.bound
				p.bmu.Unlock()
				if bound != want {
					t.Errorf("%s: the checkpoint records the log %q, want %q", what, bound, want)
				}
			}

			p := &bindingProjection{bound: tc.prev}
			_, err := projections.CatchUp(t.Context(), projections.CatchUpOptions{Store: log, Projection: p}, evs[1].Position)
			check(t, "CatchUp", err, p)

			p = &bindingProjection{bound: tc.prev}
			r := &projections.Runner{Store: log, Projection: p}
			done := make(chan error, 1)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			go func() { done <- r.Run(ctx) }()
			if tc.wantErr {
				select {
				case err = <-done:
				case <-time.After(10 * time.Second):
					t.Fatal("Run went on with a checkpoint of another log")
				}
				st, _ := r.Status(t.Context())
				if st.State != projections.StateFailed || !strings.Contains(st.LastError, tc.prev) {
					t.Errorf("status after the refusal: %+v", st)
				}
				if _, _, rec := p.snapshot(); len(rec) != 1 || !strings.Contains(rec[0], tc.prev) {
					t.Errorf("recorded errors %q, want the refusal", rec)
				}
			} else {
				err = r.WaitFor(t.Context(), evs[1].Position)
				cancel()
				if rerr := <-done; rerr != nil {
					t.Errorf("Run = %v", rerr)
				}
			}
			check(t, "Run", err, p)
		})
	}
}
