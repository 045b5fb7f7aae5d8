package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// streamsSQL lists the distinct stream names by skipping through the
// primary key index, one probe per stream rather than a scan of every
// event. It walks all streams and filters by prefix afterwards, so it does
// not depend on how the database's collation sorts the prefix.
const streamsSQL = `WITH RECURSIVE names(stream) AS (
	(SELECT stream FROM events ORDER BY stream LIMIT 1)
	UNION ALL
	SELECT (SELECT e.stream FROM events e WHERE e.stream > n.stream ORDER BY e.stream LIMIT 1)
	  FROM names n WHERE n.stream IS NOT NULL
)
SELECT stream FROM names WHERE stream IS NOT NULL AND starts_with(stream, $1)`

// Streams returns the names of the streams that have events and start
// with prefix ("" for all), in the database's order for the stream column.
func (s *Store) Streams(ctx context.Context, prefix string) ([]string, error) {
	rows, err := s.pool.Query(ctx, streamsSQL, prefix)
	if err != nil {
		return nil, fmt.Errorf("postgres: list streams starting with %q: %w", prefix, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: list streams starting with %q: %w", prefix, err)
	}
	return out, nil
}
