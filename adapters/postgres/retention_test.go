package postgres_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
)

func TestIdleRooms(t *testing.T) {
	pool := pgtest.NewPool(t, 4)
	ctx := t.Context()
	day := func(n int) time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, n) }
	// room: created, last message (nil: none), key: "live", "gone" or "" (none)
	for _, r := range []struct {
		id      int64
		created time.Time
		last    *time.Time
		key     string
	}{
		{1, day(0), nil, "live"},          // idle since day 0
		{2, day(0), ptr(day(20)), "live"}, // active on day 20
		{3, day(0), ptr(day(5)), ""},      // before encryption, idle since day 5
		{4, day(0), nil, "gone"},          // erased
		{5, day(30), nil, "live"},         // new
	} {
		if _, err := pool.Exec(ctx, `INSERT INTO rooms (id, owner_id, title, created_at, last_version) VALUES ($1, 'u', 't', $2, 0)`, r.id, r.created); err != nil {
			t.Fatal(err)
		}
		if r.last != nil {
			if _, err := pool.Exec(ctx, `INSERT INTO chat_logs (room_id, id, role, text, status, created_at, updated_at, version, seq)
				VALUES ($1, gen_random_uuid(), 'user', 'x', 'complete', $2, $2, 1, 1)`, r.id, *r.last); err != nil {
				t.Fatal(err)
			}
		}
		switch r.key {
		case "live":
			_, err := pool.Exec(ctx, `INSERT INTO room_keys (room_id, kid, kek_id, wrapped) VALUES ($1, 'k', 'kek', '\x01')`, r.id)
			if err != nil {
				t.Fatal(err)
			}
		case "gone":
			_, err := pool.Exec(ctx, `INSERT INTO room_keys (room_id, kid, destroyed_at) VALUES ($1, '', now())`, r.id)
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	cl, err := postgres.NewChatLog(pool, postgres.ChatLogConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		before time.Time
		limit  int
		want   []int64
	}{
		{day(1), 10, []int64{1}},
		{day(10), 10, []int64{1, 3}},
		{day(40), 10, []int64{1, 3, 2, 5}},
		{day(40), 2, []int64{1, 3}},
	} {
		got, err := cl.IdleRooms(ctx, tc.before, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("IdleRooms(%s, %d) (-want +got):\n%s", tc.before.Format(time.DateOnly), tc.limit, diff)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestTryAdvisoryLock(t *testing.T) {
	pool := pgtest.NewPool(t, 4)
	unlock, ok, err := postgres.TryAdvisoryLock(t.Context(), pool, "parley test lock")
	if err != nil || !ok {
		t.Fatalf("first lock: %v, %v", ok, err)
	}
	if _, ok, err := postgres.TryAdvisoryLock(t.Context(), pool, "parley test lock"); err != nil || ok {
		t.Fatalf("second lock while held: %v, %v; want not taken", ok, err)
	}
	unlock()
	unlock2, ok, err := postgres.TryAdvisoryLock(t.Context(), pool, "parley test lock")
	if err != nil || !ok {
		t.Fatalf("lock after unlock: %v, %v", ok, err)
	}
	unlock2()
}
