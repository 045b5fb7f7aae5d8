package postgres

import (
	"context"

	"github.com/parleychat/parley/domain"
)

// MigrateList exposes migrate to the external tests, which apply edited or
// broken migration lists.
var MigrateList = migrate

// BatchAppend is one append of AppendTogether.
type BatchAppend struct {
	Stream   string
	Expected domain.ExpectedVersion
	Events   []domain.EventData
}

// AppendTogether writes appends to distinct streams as one batch, the way
// an append worker does, and returns each one's outcome.
func AppendTogether(ctx context.Context, s *Store, appends []BatchAppend) ([]domain.AppendResult, []error) {
	batch := make([]*appendReq, len(appends))
	for i, a := range appends {
		batch[i] = &appendReq{ctx: ctx, stream: a.Stream, expected: a.Expected, enc: encodeEvents(a.Events), done: make(chan appendOutcome, 1)}
		batch[i].state.Store(reqTaken)
	}
	(&batcher{s: s, pool: s.pool}).run(batch)
	res := make([]domain.AppendResult, len(batch))
	errs := make([]error, len(batch))
	for i, r := range batch {
		o := <-r.done
		res[i], errs[i] = o.res, o.err
	}
	return res, errs
}
