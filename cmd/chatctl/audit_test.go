package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/inmem"
	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/audit"
	"github.com/parleychat/parley/domain/room"
)

// auditRoomEvents returns a room's conversation as the chat service
// writes it: created, a question, an answer of chunks deltas, completed;
// in the appends the service makes (create; post and start; chunk
// batches of 8; the end).
func auditRoomEvents(id int64, chunks int) [][]domain.EventData {
	at := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	ns := domain.NameUUID(domain.MustParseUUID("4f1c7a52-0b6e-4e8b-8a3e-5c1f2e7d4b61"), room.Stream(id))
	n := 0
	ev := func(e room.Event, meta domain.Metadata) domain.EventData {
		n++
		data, err := json.Marshal(e)
		if err != nil {
			panic(err)
		}
		meta.OccurredAt = at.Add(time.Duration(n) * 40 * time.Millisecond)
		mb, err := json.Marshal(meta)
		if err != nil {
			panic(err)
		}
		return domain.EventData{ID: domain.NameUUID(ns, fmt.Sprint(n)), Type: e.EventType(), Data: data, Metadata: mb}
	}
	owner := fmt.Sprintf("user-%d", id%97)
	q, a := domain.NameUUID(ns, "q"), domain.NameUUID(ns, "a")
	meta := domain.Metadata{CorrelationID: q.String(), CausationID: a.String(), UserID: owner}
	out := [][]domain.EventData{
		{ev(room.RoomCreated{RoomID: id, OwnerID: owner, Title: fmt.Sprintf("Housing question %d", id)}, domain.Metadata{UserID: owner})},
		{ev(room.MessagePosted{MessageID: q, UserID: owner, Text: "How much is the housing allowance for students living alone?"}, meta),
			ev(room.AnswerStarted{AnswerID: a, QuestionID: q, Model: "offline/scripted", Instance: "chatd-1"}, meta)},
	}
	words := []string{"The ", "allowance ", "is ", "up ", "to ", "200,000 ", "won ", "a ", "month ", "for ", "ten ", "months. "}
	var text strings.Builder
	var batch []domain.EventData
	for c := range chunks {
		d := words[c%len(words)]
		text.WriteString(d)
		batch = append(batch, ev(room.AnswerChunk{AnswerID: a, Seq: c, Delta: d}, meta))
		if len(batch) == 8 || c == chunks-1 {
			out = append(out, batch)
			batch = nil
		}
	}
	end := room.AnswerCompleted{AnswerID: a, Text: text.String(), Chunks: chunks,
		Sources: []room.Source{{Document: "housing-policy-2026.pdf", ChunkID: "p3-2", Score: 0.83, Snippet: "students living alone"}}}
	return append(out, []domain.EventData{ev(end, meta)})
}

// auditSeed writes rooms through the chain store with writers goroutines,
// each append at the exact version the previous one left, as chatd does.
func auditSeed(tb testing.TB, store domain.EventStore, rooms []int64, chunks, writers int) {
	tb.Helper()
	s := audit.NewChainingStore(store, audit.ChainOptions{})
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     = make(chan int64)
	)
	for range writers {
		wg.Go(func() {
			for id := range next {
				v := domain.NoVersion
				for _, batch := range auditRoomEvents(id, chunks) {
					res, err := s.Append(context.Background(), room.Stream(id), domain.Exact(v), batch...)
					if err != nil {
						mu.Lock()
						firstErr = errors.Join(firstErr, fmt.Errorf("room %d: %w", id, err))
						mu.Unlock()
						break
					}
					v = res.Version
				}
			}
		})
	}
	for _, id := range rooms {
		next <- id
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		tb.Fatalf("seed: %v", firstErr)
	}
}

// auditDB is a fresh migrated database seeded with rooms 1..n.
type auditDB struct {
	url  string
	pool *pgxpool.Pool
	env  map[string]string
}

func newAuditDB(t *testing.T, n, chunks int) *auditDB {
	t.Helper()
	url := pgtest.NewDatabase(t)
	pool, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	store := postgres.NewStore(pool, postgres.StoreConfig{})
	t.Cleanup(func() { store.Close() })
	rooms := make([]int64, n)
	for i := range rooms {
		rooms[i] = int64(i + 1)
	}
	auditSeed(t, store, rooms, chunks, 4)
	return &auditDB{url: url, pool: pool, env: map[string]string{"PARLEY_DATABASE_URL": url}}
}

func (db *auditDB) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	tag, err := db.pool.Exec(t.Context(), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	if tag.RowsAffected() == 0 {
		t.Fatalf("%s: changed nothing", sql)
	}
}

// auditRunCLI runs chatctl with args and returns stdout, stderr and the exit
// status main would use.
func auditRunCLI(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(t.Context(), args, func(k string) string { return env[k] }, nil, &out, &errb)
	if err != nil {
		code = exitCode(err)
		fmt.Fprintln(&errb, "chatctl:", err)
	}
	return out.String(), errb.String(), code
}

func TestAuditVerifyIntact(t *testing.T) {
	db := newAuditDB(t, 5, 20)
	out, errs, code := auditRunCLI(t, db.env, "audit", "verify", "--room", "3")
	if code != 0 || !strings.Contains(out, "room 3: intact: 24 events, head version 23") {
		t.Errorf("verify --room 3: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	out, errs, code = auditRunCLI(t, db.env, "audit", "verify", "--all")
	if code != 0 || !strings.Contains(out, "verified 5 rooms (120 events)") || !strings.Contains(out, "every chain intact") {
		t.Errorf("verify --all: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	// Not a terminal: plain progress lines, no carriage returns.
	if strings.Contains(errs, "\r") || !strings.Contains(errs, "verify: 5/5 rooms (100.0%), ") || !strings.HasSuffix(errs, ", 120 events, 0 broken\n") {
		t.Errorf("progress on a non-terminal = %q, want plain lines ending at 5/5", errs)
	}
	out, _, code = auditRunCLI(t, db.env, "audit", "verify", "--room", "99")
	if code != 1 || !strings.Contains(out, "room 99: not found") {
		t.Errorf("verify of a missing room: exit %d, stdout %q; want 1 and not found", code, out)
	}
}

// TestAuditVerifyDetectsTampering changes the events table behind the
// store's back and expects verify to name the first broken version.
func TestAuditVerifyDetectsTampering(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper []string // SQL, on room-2
		want   string   // in stdout
		others string   // another room's break the tampering causes, if any
	}{
		{"data changed", []string{`UPDATE events SET data = '{"answer_id":"00000000-0000-4000-8000-000000000000","seq":4,"delta":"forged "}' WHERE stream = 'room-2' AND version = 7`},
			"room 2: BROKEN at version 7 (content)", ""},
		{"data whitespace only", []string{`UPDATE events SET data = (data::text || ' ')::json WHERE stream = 'room-2' AND version = 12`},
			"room 2: BROKEN at version 12 (content)", ""},
		{"event deleted", []string{`DELETE FROM events WHERE stream = 'room-2' AND version = 5`},
			"room 2: BROKEN at version 5 (gap)", ""},
		{"two events swapped", []string{
			`UPDATE events e SET data = o.data, type = o.type FROM events o
			  WHERE e.stream = 'room-2' AND o.stream = 'room-2' AND ((e.version = 9 AND o.version = 10) OR (e.version = 10 AND o.version = 9))`},
			"room 2: BROKEN at version 9 (content)", ""},
		{"user edited in metadata", []string{`UPDATE events SET metadata = replace(metadata::text, '"user_id":"user-2"', '"user_id":"user-3"')::json WHERE stream = 'room-2' AND version = 2`},
			"room 2: BROKEN at version 2 (content)", ""},
		{"time edited in metadata", []string{`UPDATE events SET metadata = replace(metadata::text, '2026-05-01T09:00:00.08Z', '2026-05-01T10:00:00.08Z')::json WHERE stream = 'room-2' AND version = 1`},
			"room 2: BROKEN at version 1 (content)", ""},
		{"chain fields stripped", []string{`UPDATE events SET metadata = ((metadata::jsonb - 'prev_hash') - 'hash')::json WHERE stream = 'room-2' AND version = 20`},
			"room 2: BROKEN at version 20 (unchained)", ""},
		{"event moved in from another room", []string{
			`DELETE FROM events WHERE stream = 'room-2' AND version = 6`,
			`UPDATE events SET stream = 'room-2' WHERE stream = 'room-4' AND version = 6`},
			"room 2: BROKEN at version 6 (link)", "room 4: BROKEN at version 6 (gap)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := newAuditDB(t, 4, 20)
			for _, sql := range tc.tamper {
				db.exec(t, sql)
			}
			out, errs, code := auditRunCLI(t, db.env, "audit", "verify", "--room", "2")
			if code != 1 || !strings.Contains(out, tc.want) {
				t.Errorf("verify --room 2: exit %d, want 1 and %q\nstdout: %s\nstderr: %s", code, tc.want, out, errs)
			}
			out, errs, code = auditRunCLI(t, db.env, "audit", "verify", "--all")
			summary := "1 room failed verification"
			if tc.others != "" {
				summary = "2 rooms failed verification"
			}
			if code != 1 || !strings.Contains(out, tc.want) || !strings.Contains(out, tc.others) || strings.Contains(out, "room 1:") || !strings.Contains(out, summary) {
				t.Errorf("verify --all: exit %d, want 1 naming room 2 (and %q)\nstdout: %s\nstderr: %s", code, tc.others, out, errs)
			}
		})
	}
}

// auditRewriteChain recomputes room-2's chain from version 0 after changing
// version 3's data, as an insider covering their tracks would.
func auditRewriteChain(t *testing.T, db *auditDB) {
	t.Helper()
	pg := postgres.NewStore(db.pool, postgres.StoreConfig{})
	defer pg.Close()
	evs, err := pg.ReadStream(t.Context(), "room-2", domain.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	prev := audit.Genesis
	for _, ev := range evs {
		if ev.Version == 3 {
			ev.Data = json.RawMessage(`{"answer_id":"00000000-0000-4000-8000-000000000000","seq":0,"delta":"Nothing. "}`)
		}
		base, _, _, ok := domain.SplitChainFields(ev.Metadata)
		if !ok {
			t.Fatalf("version %d has no chain fields", ev.Version)
		}
		h := audit.EventHash(prev, ev.Stream, ev.Version, ev.ID, ev.Type, ev.Data, base)
		meta, err := domain.WithChainFields(base, prev.String(), h.String())
		if err != nil {
			t.Fatal(err)
		}
		db.exec(t, `UPDATE events SET data = $1::json, metadata = $2::json WHERE stream = $3 AND version = $4`, string(ev.Data), string(meta), ev.Stream, ev.Version)
		prev = h
	}
}

func TestAuditHeadsCatchARewrite(t *testing.T) {
	db := newAuditDB(t, 3, 20)
	dir := t.TempDir()
	heads := filepath.Join(dir, "heads.json")
	if out, errs, code := auditRunCLI(t, db.env, "audit", "head", "--all", "--out", heads); code != 0 {
		t.Fatalf("head --all: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	var doc audit.Heads
	b, _ := os.ReadFile(heads)
	if err := json.Unmarshal(b, &doc); err != nil || len(doc.Heads) != 3 || doc.Signature != nil {
		t.Fatalf("heads file: %v, %s", err, b)
	}
	h := doc.Heads[1]
	if h.Room != 2 || h.Stream != "room-2" || h.Version != 23 || len(h.Hash) != 64 || h.ExportedAt == "" {
		t.Errorf("head of room 2 = %+v", h)
	}

	auditRewriteChain(t, db)
	// Alone, the rewritten chain holds together...
	if out, errs, code := auditRunCLI(t, db.env, "audit", "verify", "--room", "2"); code != 0 {
		t.Fatalf("verify of the consistent rewrite: exit %d (a rewrite is only caught by a head)\nstdout: %s\nstderr: %s", code, out, errs)
	}
	// ...but not against the head exported before.
	for _, args := range [][]string{{"--room", "2"}, {"--all"}} {
		out, errs, code := auditRunCLI(t, db.env, append([]string{"audit", "verify", "--against", heads}, args...)...)
		if code != 1 || !strings.Contains(out, "room 2: BROKEN at version 23 (anchor)") || strings.Contains(out, "room 1:") {
			t.Errorf("verify %v --against: exit %d, want 1 naming room 2\nstdout: %s\nstderr: %s", args, code, out, errs)
		}
		if !strings.Contains(errs, "is not signed") {
			t.Errorf("verify against an unsigned file gave no warning: %s", errs)
		}
	}

	// A deleted tail and a deleted room are caught the same way.
	db.exec(t, `DELETE FROM events WHERE stream = 'room-3' AND version >= 20`)
	db.exec(t, `DELETE FROM events WHERE stream = 'room-1'`)
	out, errs, code := auditRunCLI(t, db.env, "audit", "verify", "--all", "--against", heads)
	for _, want := range []string{"room 1: BROKEN: it has no events, but a head at version 23 was exported", "room 3: BROKEN at version 23 (truncated)", "3 rooms failed verification"} {
		if code != 1 || !strings.Contains(out, want) {
			t.Errorf("after deleting: exit %d, want 1 and %q\nstdout: %s\nstderr: %s", code, want, out, errs)
		}
	}
}

func TestAuditSignedHeads(t *testing.T) {
	db := newAuditDB(t, 2, 20)
	dir := t.TempDir()
	key, other := filepath.Join(dir, "audit.key"), filepath.Join(dir, "other.key")
	for _, k := range []string{key, other} {
		if out, errs, code := auditRunCLI(t, nil, "audit", "keygen", "--out", k); code != 0 || !strings.Contains(out, k+".pub") {
			t.Fatalf("keygen: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
		}
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("private key mode = %v, %v; want 0600", fi.Mode(), err)
	}
	if _, errs, code := auditRunCLI(t, nil, "audit", "keygen", "--out", key); code != 1 || !strings.Contains(errs, "never overwrites") {
		t.Errorf("keygen over an existing key: exit %d, stderr %s", code, errs)
	}

	env := map[string]string{"PARLEY_DATABASE_URL": db.url, "PARLEY_AUDIT_SIGNING_KEY": key}
	signedOut, errs, code := auditRunCLI(t, env, "audit", "head", "--all")
	if code != 0 || !strings.Contains(errs, "signed with key") {
		t.Fatalf("head --all signed: exit %d\nstderr: %s", code, errs)
	}
	signed := filepath.Join(dir, "heads.json")
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("heads.json", signedOut)

	out, errs, code := auditRunCLI(t, db.env, "audit", "verify", "--all", "--against", signed, "--pubkey", key+".pub")
	if code != 0 || !strings.Contains(errs, "signature valid") {
		t.Errorf("verify against the signed heads: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	// The public key may come from the environment too.
	envPub := map[string]string{"PARLEY_DATABASE_URL": db.url, "PARLEY_AUDIT_PUBLIC_KEY": key + ".pub"}
	if out, errs, code := auditRunCLI(t, envPub, "audit", "verify", "--room", "1", "--against", signed); code != 0 {
		t.Errorf("verify with PARLEY_AUDIT_PUBLIC_KEY: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}

	var doc audit.Heads
	if err := json.Unmarshal([]byte(signedOut), &doc); err != nil {
		t.Fatal(err)
	}
	edit := func(f func(d *audit.Heads)) string {
		d := doc
		d.Heads = append([]audit.RoomHead(nil), doc.Heads...)
		if doc.Signature != nil {
			s := *doc.Signature
			d.Signature = &s
		}
		f(&d)
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, tc := range []struct {
		name, file, pubkey string
		code               int
		want               string
	}{
		{"head hash changed", write("h1.json", edit(func(d *audit.Heads) { d.Heads[0].Hash = strings.Repeat("0", 64) })), key + ".pub", 1, "does not verify"},
		{"head version changed", write("h2.json", edit(func(d *audit.Heads) { d.Heads[1].Version-- })), key + ".pub", 1, "does not verify"},
		{"head dropped", write("h3.json", edit(func(d *audit.Heads) { d.Heads = d.Heads[1:] })), key + ".pub", 1, "does not verify"},
		{"signature changed", write("h4.json", edit(func(d *audit.Heads) { d.Signature.Value = flipFirst(d.Signature.Value) })), key + ".pub", 1, "does not verify"},
		{"signature removed", write("h5.json", edit(func(d *audit.Heads) { d.Signature = nil })), key + ".pub", 1, "not signed, but a public key was given"},
		{"another key", signed, other + ".pub", 1, "does not verify"},
		{"no key for a signed file", signed, "", 2, "give the public key"},
		{"a private key as the public one", signed, key, 1, "not a PEM PUBLIC KEY"},
		{"not a heads file", write("h6.json", `{"format":"something else"}`), key + ".pub", 1, "format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"audit", "verify", "--all", "--against", tc.file}
			if tc.pubkey != "" {
				args = append(args, "--pubkey", tc.pubkey)
			}
			out, errs, code := auditRunCLI(t, db.env, args...)
			if code != tc.code || !strings.Contains(errs, tc.want) || strings.Contains(out, "verified") {
				t.Errorf("exit %d, want %d and %q, refused before verifying\nstdout: %s\nstderr: %s", code, tc.code, tc.want, out, errs)
			}
		})
	}
}

func TestAuditUsage(t *testing.T) {
	for _, args := range [][]string{
		{"audit"},
		{"audit", "frobnicate"},
		{"audit", "verify"},
		{"audit", "verify", "--room", "1", "--all"},
		{"audit", "verify", "--room", "-3"},
		{"audit", "verify", "--room", "x"},
		{"audit", "verify", "--all", "--parallel", "0"},
		{"audit", "verify", "--room", "1", "--pubkey", "k.pub"},
		{"audit", "head"},
		{"audit", "keygen"},
	} {
		_, errs, code := auditRunCLI(t, nil, args...)
		if code != 2 || errs == "" {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message", args, code, errs)
		}
	}
	if out, _, code := auditRunCLI(t, nil, "audit", "help"); code != 0 || !strings.Contains(out, "usage: chatctl audit <command>") || !strings.Contains(out, "verify (--room N | --all)") {
		t.Errorf("audit help: exit %d, %s", code, out)
	}
}

// TestAuditListsRoomsFromTheLog covers stores that cannot list their
// streams (KurrentDB): rooms are collected from the log.
func TestAuditListsRoomsFromTheLog(t *testing.T) {
	store := inmem.New(nil)
	auditSeed(t, store, []int64{7, 3, 11}, 4, 2)
	if _, err := store.Append(t.Context(), "not-a-room", domain.NoStream(), domain.EventData{ID: domain.NameUUID(domain.UUID{1}, "x"), Type: "X", Data: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := auditVerify(t.Context(), store, auditSelection{all: true, parallel: 2}, nil, false, &stdout, &stderr)
	if err != nil || !strings.Contains(stdout.String(), "verified 3 rooms (24 events)") || !strings.Contains(stderr.String(), "reading the whole log") {
		t.Errorf("verify --all over the log: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	rooms, err := auditListRooms(t.Context(), store, &stderr)
	if err != nil || fmt.Sprint(rooms) != "[3 7 11]" {
		t.Errorf("rooms = %v, %v; want [3 7 11]", rooms, err)
	}
}

func TestAuditUnchainedRooms(t *testing.T) {
	store := inmem.New(nil)
	// Room 1 written before the chain; room 2 after.
	for _, batch := range auditRoomEvents(1, 4) {
		if _, err := store.Append(t.Context(), room.Stream(1), domain.Any(), batch...); err != nil {
			t.Fatal(err)
		}
	}
	auditSeed(t, store, []int64{2}, 4, 1)
	var stdout, stderr bytes.Buffer
	err := auditVerify(t.Context(), store, auditSelection{all: true, parallel: 1}, nil, false, &stdout, &stderr)
	if exitCode(err) != 1 || !strings.Contains(stdout.String(), "room 1: UNCHAINED") || strings.Contains(stdout.String(), "room 2") {
		t.Errorf("verify: %v\nstdout: %s", err, stdout.String())
	}
	stdout.Reset()
	if err := auditVerify(t.Context(), store, auditSelection{all: true, parallel: 1}, nil, true, &stdout, &stderr); err != nil {
		t.Errorf("verify --allow-unchained: %v\nstdout: %s", err, stdout.String())
	}
}

// flipFirst changes the first character of a base64 text to another
// base64 character, so the bytes it encodes surely change.
func flipFirst(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}
