package postgres_test

import (
	"regexp"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
)

// TestLogIDNamesTheDatabase: two stores over one database name one log;
// another database of the same cluster is another log.
func TestLogIDNamesTheDatabase(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	var ids []string
	for _, u := range []string{url, url, pgtest.NewDatabase(t)} {
		pool, err := pgxpool.New(t.Context(), u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		s := postgres.NewStore(pool, postgres.StoreConfig{})
		t.Cleanup(func() { s.Close() })
		id, err := s.LogID(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if !regexp.MustCompile(`^postgres:\d+/\d+$`).MatchString(ids[0]) || ids[1] != ids[0] || ids[2] == ids[0] {
		t.Errorf("LogID = %q, want postgres:<system id>/<oid>, the same for one database only", ids)
	}
}
