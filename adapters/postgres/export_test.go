package postgres

import (
	"context"
	"slices"

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
// an append worker does, finishes each the way its caller would, and
// returns each one's outcome and how many statements the worker's part
// ran.
func AppendTogether(ctx context.Context, s *Store, appends []BatchAppend) (res []domain.AppendResult, errs []error, workerStatements uint64) {
	batch := make([]*appendReq, len(appends))
	for i, a := range appends {
		batch[i] = &appendReq{ctx: ctx, stream: a.Stream, expected: a.Expected, enc: encodeEvents(a.Events), done: make(chan appendOutcome, 1)}
		batch[i].state.Store(reqTaken)
	}
	b := &batcher{s: s, pool: s.pool}
	before := s.stats.statements.Load()
	b.run(slices.Clone(batch)) // run may reorder its batch
	workerStatements = s.stats.statements.Load() - before
	res = make([]domain.AppendResult, len(batch))
	errs = make([]error, len(batch))
	for i, r := range batch {
		res[i], errs[i] = b.finish(r, <-r.done)
	}
	return res, errs, workerStatements
}

// PlanCacheModeOfReads is plan_cache_mode on the connections that read the
// global log.
func PlanCacheModeOfReads(ctx context.Context, s *Store) (string, error) {
	var mode string
	err := s.readPool().QueryRow(ctx, `SHOW plan_cache_mode`).Scan(&mode)
	return mode, err
}
