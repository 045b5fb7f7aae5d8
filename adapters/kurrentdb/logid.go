package kurrentdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/parleychat/parley/domain"
)

// The log's name.
//
// KurrentDB has no identifier of its own that outlives a node and stays
// with the data, so the store writes one into the log: the first event of
// the stream LogStream, LogCreated {"log": "<uuid>"}, appended at
// NoStream by whichever process asks first (a racing second one reads the
// winner's). A backup restored elsewhere keeps it, with the positions it
// names; an empty database, or the events copied into another store, gets
// another. The stream does not start with "room-", so no projection or
// reader of the rooms sees it.

// LogStream is the stream holding the log's name.
const LogStream = "parley-log"

// TypeLogCreated is the type of LogStream's event.
const TypeLogCreated = "LogCreated"

// LogID implements projections.LogIdentifier: "kurrentdb:" and the uuid
// in LogStream, written there on first use.
func (s *Store) LogID(ctx context.Context) (string, error) {
	for try := 0; ; try++ {
		id, err := s.readLogID(ctx)
		if err == nil {
			return "kurrentdb:" + id, nil
		}
		if !errors.Is(err, domain.ErrStreamNotFound) || try > 0 {
			return "", fmt.Errorf("kurrentdb: name the log: %w", err)
		}
		data, err := json.Marshal(map[string]string{"log": uuid.NewString()})
		if err != nil {
			return "", err
		}
		_, err = s.Append(ctx, LogStream, domain.NoStream(), domain.EventData{ID: domain.UUID(uuid.New()), Type: TypeLogCreated, Data: data})
		var ce *domain.ConflictError
		if err != nil && !errors.As(err, &ce) { // a conflict: another process named it first
			return "", fmt.Errorf("kurrentdb: name the log: %w", err)
		}
	}
}

// readLogID reads the uuid from LogStream's first event.
func (s *Store) readLogID(ctx context.Context) (string, error) {
	evs, err := s.ReadStream(ctx, LogStream, domain.ReadStreamOptions{From: 0, Limit: 1})
	if err != nil {
		return "", err
	}
	var d struct {
		Log string `json:"log"`
	}
	if len(evs) == 0 || evs[0].Type != TypeLogCreated || json.Unmarshal(evs[0].Data, &d) != nil || d.Log == "" {
		return "", fmt.Errorf("the first event of %s is not a %s with a log id", LogStream, TypeLogCreated)
	}
	return d.Log, nil
}
