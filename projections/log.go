package projections

import (
	"context"
	"errors"
	"fmt"
)

// Which log a checkpoint belongs to.
//
// A checkpoint is a position, and a position means something only in the
// log it was read from: the Postgres store's positions are transaction
// ids of one database, KurrentDB's are offsets in its own files. A
// checkpoint taken from one log and followed in another (PARLEY_EVENT_STORE
// switched to kurrentdb, a database restored elsewhere) would silently
// skip or repeat events. So a store that can name its log does
// (LogIdentifier), a projection that can record the name beside its
// checkpoint does (LogBinder), and the Runner and CatchUp check the two
// before applying anything: a checkpoint of another log stops them with a
// *WrongLogError. A checkpoint that records no log yet (a new projection,
// or one written before logs were recorded) is bound to the first log it
// is run against.

// LogIdentifier is implemented by event stores that can name their log.
type LogIdentifier interface {
	// LogID names the log: the same string for every reader of the same
	// log, another for any other log, such as "postgres:<system
	// identifier>/<database oid>". "" means the store cannot tell.
	LogID(ctx context.Context) (string, error)
}

// LogBinder is implemented by projections whose checkpoint records the
// log it belongs to.
type LogBinder interface {
	// BindLog records log as the log of the checkpoint when the checkpoint
	// records none yet, and returns the log it records (log itself, or
	// another one it was bound to before).
	BindLog(ctx context.Context, log string) (string, error)
}

// ErrWrongLog is what a *WrongLogError matches with errors.Is.
var ErrWrongLog = errors.New("the checkpoint belongs to another log")

// WrongLogError reports a projection whose checkpoint belongs to another
// log than the one it is asked to follow.
type WrongLogError struct {
	// Projection is the projection's name.
	Projection string
	// Bound is the log its checkpoint belongs to; Log the one at hand.
	Bound, Log string
}

// Error says which logs, and why the projection must not go on.
func (e *WrongLogError) Error() string {
	return fmt.Sprintf("projection %s: its checkpoint belongs to the log %s, but the event store is the log %s: a position in one log means nothing in another",
		e.Projection, e.Bound, e.Log)
}

// Is makes a *WrongLogError match ErrWrongLog.
func (e *WrongLogError) Is(target error) bool { return target == ErrWrongLog }

// LogOf returns the name of store's log, or "" when store cannot tell.
func LogOf(ctx context.Context, store any) (string, error) {
	li, ok := store.(LogIdentifier)
	if !ok {
		return "", nil
	}
	id, err := li.LogID(ctx)
	if err != nil {
		return "", fmt.Errorf("name the event store's log: %w", err)
	}
	return id, nil
}

// BindLog checks that projection p's checkpoint belongs to log, recording
// log with it when it records none. It returns a *WrongLogError when the
// checkpoint belongs to another log; a projection that records no log,
// or an empty log (the store cannot tell), passes unchecked.
func BindLog(ctx context.Context, p Projection, log string) error {
	b, ok := p.(LogBinder)
	if !ok || log == "" {
		return nil
	}
	bound, err := b.BindLog(ctx, log)
	if err != nil {
		return fmt.Errorf("projection %s: record the log of its checkpoint: %w", p.Name(), err)
	}
	if bound != log {
		return &WrongLogError{Projection: p.Name(), Bound: bound, Log: log}
	}
	return nil
}

// bindStoreLog is BindLog with the log of store.
func bindStoreLog(ctx context.Context, store any, p Projection) error {
	log, err := LogOf(ctx, store)
	if err != nil {
		return fmt.Errorf("projection %s: %w", p.Name(), err)
	}
	return BindLog(ctx, p, log)
}
