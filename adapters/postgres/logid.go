package postgres

import (
	"context"
	"fmt"
)

// LogID implements projections.LogIdentifier: "postgres:" and the
// cluster's system identifier and the database's oid, such as
// "postgres:7642011472967116994/16385". The store's positions are
// transaction ids of one database of one cluster, so they mean something
// only there: a physical standby promoted in its place keeps both numbers
// (and its checkpoints), while a dump restored into another cluster or
// database is another log, whose projections must be rebuilt.
func (s *Store) LogID(ctx context.Context) (string, error) {
	var sysid, oid int64
	err := s.pool.QueryRow(ctx, `SELECT (SELECT system_identifier FROM pg_control_system()),
		(SELECT oid::bigint FROM pg_database WHERE datname = current_database())`).Scan(&sysid, &oid)
	if err != nil {
		return "", fmt.Errorf("postgres: name the log: %w", err)
	}
	return fmt.Sprintf("postgres:%d/%d", uint64(sysid), oid), nil
}
