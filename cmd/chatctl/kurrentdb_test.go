package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/adapters/kurrentdb"
	"github.com/parleychat/parley/adapters/kurrentdb/kurrentdbtest"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room/roomgen"
)

// TestProjectionCommandsOnKurrentDB: with PARLEY_EVENT_STORE=kurrentdb
// every projections command reads KurrentDB's log (here the in-process
// fake server over the real client), not the Postgres events table of
// the same database; a checkpoint taken from the Postgres log is refused
// there with advice, and a rebuild makes the read models KurrentDB's.
func TestProjectionCommandsOnKurrentDB(t *testing.T) {
	t.Parallel()
	e := newPGEnv(t)
	// The Postgres log, projected as chatd on Postgres would.
	e.write(t, roomgen.Config{Rooms: 20, Seed: 41})
	r, stop := e.startRunner(t)
	e.waitFor(t, r)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	pgCP, _ := e.checkpoint(t, "chatlog")

	// Another log, in KurrentDB, with other rooms.
	_, url := kurrentdbtest.Start(t, 2<<20)
	ks, err := kurrentdb.Dial(t.Context(), url, kurrentdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	writeTo := func(first int64, n int, seed uint64) domain.Position {
		t.Helper()
		rooms, _ := roomgen.Generate(roomgen.Config{Rooms: n, FirstRoom: first, Seed: seed})
		if _, err := roomgen.Write(t.Context(), ks, rooms, 2, 4, nil); err != nil {
			t.Fatal(err)
		}
		h, err := ks.HeadPosition(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	head := writeTo(5000, 15, 42)
	kdb := map[string]string{"PARLEY_EVENT_STORE": "kurrentdb", "PARLEY_KURRENTDB_URL": url}
	rooms := func() []string {
		return pgtest.Strings(t, e.pool, `SELECT id::text FROM rooms ORDER BY id`)
	}

	// The Postgres checkpoint is refused on KurrentDB, by status...
	out, _, err := e.chatctlWith(t.Context(), kdb, "projections", "status")
	t.Logf("status with the Postgres checkpoint:\n%s", out)
	if exitCode(err) != 1 || !strings.Contains(out, "event store: kurrentdb, log kurrentdb:") || !strings.Contains(out, "OTHER LOG") ||
		!strings.Contains(out, "chatlog: its checkpoint belongs to the log postgres:") || !strings.Contains(out, "chatctl projections rebuild chatlog") {
		t.Errorf("status = %v, want exit status 1 naming both logs and the rebuild", err)
	}
	// ...and by run, which applies nothing.
	_, _, err = e.chatctlWith(t.Context(), kdb, "projections", "run", "chatlog")
	if err == nil || !strings.Contains(err.Error(), "belongs to the log postgres:") || !strings.Contains(err.Error(), "rebuild it against this log: chatctl projections rebuild chatlog") {
		t.Errorf("run = %v, want the checkpoint refused with advice", err)
	}
	if cp, _ := e.checkpoint(t, "chatlog"); cp != pgCP || len(rooms()) != 20 {
		t.Errorf("after the refusal: checkpoint %s (was %s), %d rooms (was 20)", cp, pgCP, len(rooms()))
	}

	// A rebuild reads KurrentDB's log and replaces the copy of the other.
	if out, errOut, err := e.chatctlWith(t.Context(), kdb, "projections", "rebuild", "all"); err != nil {
		t.Fatalf("rebuild all on KurrentDB: %v\n%s\n%s", err, out, errOut)
	}
	got := rooms()
	if len(got) != 15 || got[0] != "5000" {
		t.Errorf("the ChatLog after the rebuild holds rooms %v, want KurrentDB's 15 from 5000", got)
	}
	if cp, _ := e.checkpoint(t, "chatlog"); cp != head {
		t.Errorf("checkpoint after the rebuild = %s, want KurrentDB's head %s", cp, head)
	}
	out, _, err = e.chatctlWith(t.Context(), kdb, "projections", "status")
	t.Logf("status after the rebuild:\n%s", out)
	if err != nil || strings.Count(out, "caught up") != 2 {
		t.Errorf("status after the rebuild = %v, want chatlog and memory caught up", err)
	}

	// run follows KurrentDB's log.
	head = writeTo(6000, 5, 43)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, _, err := e.chatctlWith(ctx, kdb, "projections", "run", "all", "--every", "1h")
		done <- err
	}()
	for deadline := time.Now().Add(time.Minute); ; {
		if cp, _ := e.checkpoint(t, "chatlog"); cp == head {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("projections run did not reach KurrentDB's head %s", head)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("projections run = %v", err)
	}
	if got := rooms(); len(got) != 20 {
		t.Errorf("the ChatLog after run holds %d rooms, want 20", len(got))
	}
	// A dry run compares against KurrentDB's log too; drop-old clears the
	// Postgres copies.
	if out, _, err := e.chatctlWith(t.Context(), kdb, "projections", "rebuild", "all", "--dry-run"); err != nil || strings.Count(out, "equals the live read model") != 2 {
		t.Errorf("dry run = %v\n%s", err, out)
	}
	if out, _, err := e.chatctlWith(t.Context(), kdb, "projections", "drop-old", "all"); err != nil || strings.Count(out, "dropped the old copy") != 2 {
		t.Errorf("drop-old = %v\n%s", err, out)
	}
}
