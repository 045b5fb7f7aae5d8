package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
	"github.com/parleychat/parley/projections"
)

var (
	_ projections.Projection      = (*ChatLog)(nil)
	_ projections.ErrorRecorder   = (*ChatLog)(nil)
	_ projections.FailureRecorder = (*ChatLog)(nil)
)

// DefaultChatLogName is the ChatLog projection's default name, its row in
// projection_checkpoints.
const DefaultChatLogName = "chatlog"

// Page sizes of the ChatLog queries.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

// ChatLogConfig configures a ChatLog. The zero value is the live read model.
type ChatLogConfig struct {
	// Name is the projection's name and its checkpoint's. Default
	// DefaultChatLogName.
	Name string
	// TableSuffix is appended to the table names rooms and chat_logs, so a
	// rebuild can fill fresh tables beside the live ones (created with
	// CREATE TABLE rooms_next (LIKE rooms INCLUDING ALL) and so on) and
	// swap them in once caught up; give it its own Name too. Lower-case
	// letters, digits and underscores, at most 30. Default "": the live
	// tables.
	TableSuffix string
	// Keys, when set, seals the text the ChatLog holds under each room's
	// data key (privacy.Keyring), as chatd runs it, and opens it on read:
	// the tables, their WAL and backups hold no conversation text, and an
	// erased room's rows cannot be read.
	Keys RoomKeys
}

var tableSuffix = regexp.MustCompile(`^[a-z0-9_]{0,30}$`)

// ChatLog is the Postgres read model of rooms and their conversations:
// the rooms and chat_logs tables, with the messages room.History folds
// from each room's stream. It is a projections.Projection, and answers the
// queries of the REST API and of WebSocket connects.
type ChatLog struct {
	pool *pgxpool.Pool
	name string
	sql  chatLogSQL
	keys RoomKeys
}

// NewChatLog returns the ChatLog over a migrated database.
func NewChatLog(pool *pgxpool.Pool, cfg ChatLogConfig) (*ChatLog, error) {
	if cfg.Name == "" {
		cfg.Name = DefaultChatLogName
	}
	if !tableSuffix.MatchString(cfg.TableSuffix) {
		return nil, fmt.Errorf("postgres: chat log table suffix %q: use at most 30 lower-case letters, digits and underscores", cfg.TableSuffix)
	}
	return &ChatLog{pool: pool, name: cfg.Name, sql: newChatLogSQL(cfg.TableSuffix), keys: cfg.Keys}, nil
}

// Name implements projections.Projection.
func (c *ChatLog) Name() string { return c.name }

// Checkpoint implements projections.Projection.
func (c *ChatLog) Checkpoint(ctx context.Context) (domain.Position, error) {
	return readCheckpoint(ctx, c.pool, c.name)
}

// RecordError implements projections.ErrorRecorder.
func (c *ChatLog) RecordError(ctx context.Context, msg string) error {
	return recordCheckpointError(ctx, c.pool, c.name, msg, nil)
}

// RecordFailure implements projections.FailureRecorder.
func (c *ChatLog) RecordFailure(ctx context.Context, at domain.Position, msg string) error {
	return recordCheckpointError(ctx, c.pool, c.name, msg, &at)
}

// chatLogSQL holds the statements, with the table names filled in.
type chatLogSQL struct {
	roomVersions, insertRooms, updateRooms, insertMessages, updateMessages string
	room, roomsOf, messages, history, openAnswers                          string
	eraseMessages, roomIDsOf, idleRooms                                    string
}

func newChatLogSQL(suffix string) chatLogSQL {
	r := strings.NewReplacer("{rooms}", "rooms"+suffix, "{chat_logs}", "chat_logs"+suffix)
	return chatLogSQL{
		// A join rather than id = ANY ($1): a cached generic plan made
		// while the table was small (a rebuild's shadow starts empty) may
		// scan it and test each row against the whole array.
		// With whether an answer is streaming in the room (the partial
		// index chat_logs_streaming finds it).
		roomVersions: r.Replace(`SELECT r.id, r.last_version,
	EXISTS (SELECT 1 FROM {chat_logs} c WHERE c.room_id = r.id AND c.status = 'streaming')
FROM unnest($1::bigint[]) AS u(id) JOIN {rooms} r ON r.id = u.id`),
		insertRooms: r.Replace(`INSERT INTO {rooms} (id, owner_id, title, created_at, deleted_at, last_version)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::bigint[])
ON CONFLICT (id) DO NOTHING`),
		// Fields a batch did not set are NULL and keep their value; rows
		// that already hold the batch's first event are left alone.
		updateRooms: r.Replace(`UPDATE {rooms} AS r SET
	owner_id = coalesce(u.owner_id, r.owner_id),
	title = coalesce(u.title, r.title),
	created_at = coalesce(u.created_at, r.created_at),
	deleted_at = coalesce(u.deleted_at, r.deleted_at),
	last_version = u.last_version
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::bigint[], $7::bigint[])
	AS u(id, owner_id, title, created_at, deleted_at, last_version, first_version)
WHERE r.id = u.id AND r.last_version < u.first_version`),
		insertMessages: r.Replace(`INSERT INTO {chat_logs} (room_id, id, role, text, status, sources, client_id, created_at, updated_at, version, seq)
SELECT u.room_id, u.id, u.role, u.text, u.status, u.sources::jsonb, u.client_id, u.created_at, u.updated_at, u.version, u.seq
FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[], $9::timestamptz[], $10::bigint[], $11::bigint[])
	AS u(room_id, id, role, text, status, sources, client_id, created_at, updated_at, version, seq)
ON CONFLICT (room_id, id) DO NOTHING`),
		// An answer's row is written twice: when it opens, and once more,
		// whole, when it ends (chunks are not folded). A row that already
		// holds the patch's event is left alone.
		updateMessages: r.Replace(`UPDATE {chat_logs} AS c SET
	text = u.text,
	status = u.status,
	sources = CASE WHEN u.set_sources THEN u.sources::jsonb ELSE c.sources END,
	updated_at = u.updated_at,
	version = u.version
FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::bool[], $6::text[], $7::timestamptz[], $8::bigint[], $9::bigint[])
	AS u(room_id, id, text, status, set_sources, sources, updated_at, version, first_version)
WHERE c.room_id = u.room_id AND c.id = u.id AND c.version < u.first_version`),
		room: r.Replace(`SELECT id, owner_id, title, created_at, deleted_at, last_version FROM {rooms} WHERE id = $1`),
		roomsOf: r.Replace(`SELECT id, owner_id, title, created_at, deleted_at, last_version FROM {rooms}
WHERE owner_id = $1 AND deleted_at IS NULL
ORDER BY created_at DESC, id DESC LIMIT $2`),
		openAnswers:   r.Replace(`SELECT DISTINCT room_id FROM {chat_logs} WHERE status = 'streaming'`),
		eraseMessages: r.Replace(`DELETE FROM {chat_logs} WHERE room_id = ANY($1::bigint[])`),
		roomIDsOf:     r.Replace(`SELECT id FROM {rooms} WHERE owner_id = $1 ORDER BY id`),
		idleRooms:     r.Replace(idleRoomsSQL),
		messages: r.Replace(`SELECT id, role, text, status, sources, client_id, created_at, updated_at, version FROM {chat_logs}
WHERE room_id = $1 AND seq < $2 AND version < $2
ORDER BY seq DESC LIMIT $3`),
		// One statement, so the messages and the version agree.
		history: r.Replace(`SELECT r.last_version, c.seq IS NOT NULL,
	coalesce(c.id, '00000000-0000-0000-0000-000000000000'), coalesce(c.role, ''), coalesce(c.text, ''),
	coalesce(c.status, ''), c.sources, coalesce(c.client_id, ''), coalesce(c.created_at, 'epoch'),
	coalesce(c.updated_at, 'epoch'), coalesce(c.version, -1)
FROM {rooms} r LEFT JOIN {chat_logs} c ON c.room_id = r.id
WHERE r.id = $1
ORDER BY c.seq`),
	}
}

// Apply implements projections.Projection: it folds the batch per room in
// memory and writes the result and the checkpoint in one transaction, in
// five round trips whatever the batch's size. Events at or before the
// checkpoint, and events at or below a room's last_version, are skipped,
// so applying a batch again changes nothing. An event that does not decode
// is a *projections.EventError, returned before anything is written.
// Streams with the room prefix whose names are not room streams
// (room.ParseStream) are skipped.
func (c *ChatLog) Apply(ctx context.Context, batch []domain.RecordedEvent) error {
	if len(batch) == 0 {
		return nil
	}
	decoded, ids, err := decodeRoomEvents(batch)
	if err != nil {
		return err
	}
	last := batch[len(batch)-1].Position
	if err := c.apply(ctx, decoded, ids, last); err != nil {
		return fmt.Errorf("postgres: apply %d events to %s up to %s: %w", len(batch), c.name, last, err)
	}
	return nil
}

func (c *ChatLog) apply(ctx context.Context, decoded []roomEvent, ids []int64, last domain.Position) error {
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	// The checkpoint row is locked first and on its own: a statement that
	// names the tables takes a lock on them when it is parsed, which pgx
	// may do before the batch runs (describe modes, statements not yet
	// cached), and a rebuild's swap (rebuild.go) takes the row lock and
	// then the tables. Locking in the same order, we never deadlock with it.
	cp, err := lockCheckpoint(ctx, tx, c.name)
	if err != nil {
		return fmt.Errorf("lock checkpoint: %w", err)
	}
	if !cp.Less(last) {
		return nil // applied already
	}

	versions := make(map[int64]roomState, len(ids))
	rows, err := tx.Query(ctx, c.sql.roomVersions, ids)
	if err != nil {
		return fmt.Errorf("read room versions: %w", err)
	}
	for rows.Next() {
		var id int64
		var st roomState
		if err := rows.Scan(&id, &st.version, &st.streaming); err != nil {
			rows.Close()
			return fmt.Errorf("read room versions: %w", err)
		}
		versions[id] = st
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read room versions: %w", err)
	}

	f := foldBatch(decoded, cp, versions)
	if err := c.sealFold(ctx, f); err != nil {
		return err
	}
	wb := &pgx.Batch{}
	f.queue(wb, &c.sql)
	wb.Queue(saveCheckpointSQL, c.name, int64(last.Commit), int64(last.Prepare))
	if err := tx.SendBatch(ctx, wb).Close(); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// roomEvent is a decoded event of a room stream.
type roomEvent struct {
	ev   *domain.RecordedEvent
	room int64
	p    room.Event // nil for event types room does not know
}

// decodeRoomEvents decodes the room events of batch and lists their rooms.
// Chunks (room.IsChunk) are skipped undecoded: the ChatLog takes an
// answer's text from its terminal event.
func decodeRoomEvents(batch []domain.RecordedEvent) ([]roomEvent, []int64, error) {
	out := make([]roomEvent, 0, len(batch))
	var ids []int64
	seen := map[int64]bool{}
	for i := range batch {
		ev := &batch[i]
		if room.IsChunk(ev.Type) {
			continue
		}
		id, ok := room.ParseStream(ev.Stream)
		if !ok {
			continue
		}
		p, err := room.Decode(*ev, true)
		if err != nil {
			// room.Decode's error names the event, as EventError does.
			if cause := errors.Unwrap(err); cause != nil {
				err = cause
			}
			return nil, nil, projections.NewEventError(*ev, err)
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
		out = append(out, roomEvent{ev: ev, room: id, p: p})
	}
	return out, ids, nil
}

// roomState is a room's row as a batch finds it.
type roomState struct {
	version   int64 // last_version
	streaming bool  // an answer is open: its message has status streaming
}

// roomFold is what one batch does to one room.
//
// The room's last_version is the version its rows are complete through:
// history readers take its rows, then the stream after that version. The
// ChatLog never folds chunks, so while an answer is open (from its
// AnswerStarted to its terminal event) last_version stays at the version
// that opened it: whatever comes meanwhile — chunks, the retrieval record,
// a summary, an audit record — is read from the stream, and the terminal
// event writes the answer's whole text and moves last_version on.
type roomFold struct {
	id      int64
	exists  bool  // its row is in the table
	open    bool  // an answer is open: last_version waits for its end
	first   int64 // the first version that moves last_version in this batch; NoVersion for none
	last    int64 // the version last_version moves to (or holds at)
	seen    int64 // the last version this batch went through
	firstAt time.Time
	created *room.RoomCreated
	at      time.Time // of RoomCreated
	deleted time.Time // of RoomDeleted or RoomErased; zero when none
	erased  bool      // RoomErased: its rows go, its title is emptied
	msgs    map[domain.UUID]*msgFold
}

// msgFold is what one batch does to one message: a whole new row, or the
// end of an answer whose row an earlier batch wrote.
type msgFold struct {
	room       int64
	id         domain.UUID
	isNew      bool
	text       []byte
	role       string
	status     string
	setSources bool
	sources    []room.Source
	clientID   string
	createdAt  time.Time
	updatedAt  time.Time
	seq        int64 // new rows: the version that created it
	first      int64 // patches: the first version folded
	version    int64 // the last version folded
}

// batchFold is the whole batch's effect, in first-seen order.
type batchFold struct {
	rooms []*roomFold
	msgs  []*msgFold
}

// foldBatch folds the events after cp, and after each room's version, the
// way room.History.Apply does, chunks aside (see roomFold).
func foldBatch(decoded []roomEvent, cp domain.Position, versions map[int64]roomState) *batchFold {
	f := &batchFold{}
	byID := map[int64]*roomFold{}
	for _, de := range decoded {
		ev := de.ev
		if !cp.Less(ev.Position) {
			continue
		}
		rf := byID[de.room]
		if rf == nil {
			st, ok := versions[de.room]
			if !ok {
				st.version = domain.NoVersion
			}
			rf = &roomFold{id: de.room, exists: ok, open: st.streaming, first: domain.NoVersion, last: st.version, seen: st.version,
				msgs: map[domain.UUID]*msgFold{}}
			byID[de.room] = rf
			f.rooms = append(f.rooms, rf)
		}
		if ev.Version <= rf.seen {
			continue
		}
		rf.seen = ev.Version
		at := ev.RecordedAt
		switch e := de.p.(type) {
		case room.RoomCreated:
			rf.created, rf.at = &e, at
		case room.RoomDeleted:
			rf.deleted, rf.open = at, false
		case room.RoomErased:
			rf.deleted, rf.erased, rf.open = at, true, false
		case room.MessagePosted:
			f.add(rf, &msgFold{id: e.MessageID, role: room.RoleUser, text: []byte(e.Text), status: room.StatusComplete,
				clientID: e.ClientID}, ev)
		case room.AnswerStarted:
			f.add(rf, &msgFold{id: e.AnswerID, role: room.RoleAssistant, status: room.StatusStreaming}, ev)
			rf.advance(ev) // the open answer's row exists: complete through here
			rf.open = true
			continue
		case room.AnswerCompleted:
			m := f.update(rf, e.AnswerID, ev)
			m.text, m.status = append(m.text[:0], e.Text...), room.StatusComplete
			m.setSources, m.sources = true, e.Sources
			rf.open = false
		case room.AnswerFailed:
			m := f.update(rf, e.AnswerID, ev)
			m.text, m.status = append(m.text[:0], e.Text...), room.StatusFailed
			rf.open = false
		case room.AnswerCancelled:
			m := f.update(rf, e.AnswerID, ev)
			m.text, m.status = append(m.text[:0], e.Text...), room.StatusCancelled
			rf.open = false
		}
		if !rf.open {
			rf.advance(ev)
		}
	}
	return f
}

// advance moves the room's last_version to ev's.
func (rf *roomFold) advance(ev *domain.RecordedEvent) {
	if rf.first == domain.NoVersion {
		rf.first, rf.firstAt = ev.Version, ev.RecordedAt
	}
	rf.last = ev.Version
}

// add starts a message. A message ID already in the room keeps its first
// row: room.PostMessage never posts one twice.
func (f *batchFold) add(rf *roomFold, m *msgFold, ev *domain.RecordedEvent) {
	if _, dup := rf.msgs[m.id]; dup {
		return
	}
	m.room, m.isNew = rf.id, true
	m.createdAt, m.updatedAt = ev.RecordedAt, ev.RecordedAt
	m.seq, m.first, m.version = ev.Version, ev.Version, ev.Version
	rf.msgs[m.id] = m
	f.msgs = append(f.msgs, m)
}

// update returns the message id changed by ev: the batch's new row, or a
// patch of an earlier row (which matches nothing when there is no such
// message, as room.History ignores it).
func (f *batchFold) update(rf *roomFold, id domain.UUID, ev *domain.RecordedEvent) *msgFold {
	m := rf.msgs[id]
	if m == nil {
		m = &msgFold{room: rf.id, id: id, first: ev.Version}
		rf.msgs[id] = m
		f.msgs = append(f.msgs, m)
	}
	m.version, m.updatedAt = ev.Version, ev.RecordedAt
	return m
}

// queue adds the statements writing f to b.
func (f *batchFold) queue(b *pgx.Batch, q *chatLogSQL) {
	var (
		newRooms, oldRooms roomColumns
		newMsgs            newMsgColumns
		patches            patchColumns
	)
	for _, rf := range f.rooms {
		if rf.first == domain.NoVersion {
			continue
		}
		if rf.exists {
			oldRooms.add(rf, false)
		} else {
			newRooms.add(rf, true)
		}
	}
	for _, m := range f.msgs {
		if m.isNew {
			newMsgs.add(m)
		} else {
			patches.add(m)
		}
	}
	if len(newRooms.id) > 0 {
		b.Queue(q.insertRooms, newRooms.id, newRooms.owner, newRooms.title, newRooms.createdAt, newRooms.deletedAt, newRooms.last)
	}
	if len(oldRooms.id) > 0 {
		b.Queue(q.updateRooms, oldRooms.id, oldRooms.owner, oldRooms.title, oldRooms.createdAt, oldRooms.deletedAt, oldRooms.last, oldRooms.first)
	}
	if len(newMsgs.room) > 0 {
		c := &newMsgs
		b.Queue(q.insertMessages, c.room, c.id, c.role, c.text, c.status, c.sources, c.clientID, c.createdAt, c.updatedAt, c.version, c.seq)
	}
	if len(patches.room) > 0 {
		c := &patches
		b.Queue(q.updateMessages, c.room, c.id, c.text, c.status, c.setSources, c.sources, c.updatedAt, c.version, c.first)
	}
	var erased []int64
	for _, rf := range f.rooms {
		if rf.erased {
			erased = append(erased, rf.id)
		}
	}
	if len(erased) > 0 { // last: a batch may write rows of the room it erases
		b.Queue(q.eraseMessages, erased)
	}
}

// roomColumns are the arrays of a rooms statement. For a new row, fields
// the batch did not set get placeholders (a stream should start with
// RoomCreated); for an update they are NULL and keep their value.
type roomColumns struct {
	id, last, first []int64
	owner, title    []*string
	createdAt       []*time.Time
	deletedAt       []*time.Time
}

func (c *roomColumns) add(rf *roomFold, isNew bool) {
	var owner, title *string
	var createdAt, deletedAt *time.Time
	if rf.created != nil {
		owner, title, createdAt = &rf.created.OwnerID, &rf.created.Title, &rf.at
	} else if isNew {
		empty := ""
		owner, title, createdAt = &empty, &empty, &rf.firstAt
	}
	if !rf.deleted.IsZero() {
		deletedAt = &rf.deleted
	}
	if rf.erased {
		empty := ""
		title = &empty
	}
	c.id = append(c.id, rf.id)
	c.last = append(c.last, rf.last)
	c.first = append(c.first, rf.first)
	c.owner = append(c.owner, owner)
	c.title = append(c.title, title)
	c.createdAt = append(c.createdAt, createdAt)
	c.deletedAt = append(c.deletedAt, deletedAt)
}

type newMsgColumns struct {
	room, version, seq           []int64
	id                           [][16]byte
	role, text, status, clientID []string
	sources                      []*string
	createdAt, updatedAt         []time.Time
}

func (c *newMsgColumns) add(m *msgFold) {
	c.room = append(c.room, m.room)
	c.id = append(c.id, m.id)
	c.role = append(c.role, m.role)
	c.text = append(c.text, string(m.text))
	c.status = append(c.status, m.status)
	c.sources = append(c.sources, encodeSources(m.sources))
	c.clientID = append(c.clientID, m.clientID)
	c.createdAt = append(c.createdAt, m.createdAt)
	c.updatedAt = append(c.updatedAt, m.updatedAt)
	c.version = append(c.version, m.version)
	c.seq = append(c.seq, m.seq)
}

type patchColumns struct {
	room, version, first []int64
	id                   [][16]byte
	setSources           []bool
	text, status         []string
	sources              []*string
	updatedAt            []time.Time
}

func (c *patchColumns) add(m *msgFold) {
	c.room = append(c.room, m.room)
	c.id = append(c.id, m.id)
	c.text = append(c.text, string(m.text))
	c.status = append(c.status, m.status)
	c.setSources = append(c.setSources, m.setSources)
	c.sources = append(c.sources, encodeSources(m.sources))
	c.updatedAt = append(c.updatedAt, m.updatedAt)
	c.version = append(c.version, m.version)
	c.first = append(c.first, m.first)
}

// encodeSources is the sources column of s: NULL for nil, so that an
// empty list and no list stay apart as they do in room.Message.
func encodeSources(s []room.Source) *string {
	if s == nil {
		return nil
	}
	b, err := json.Marshal(s)
	if err != nil { // unreachable: decoded from JSON, a score is never NaN or infinite
		return nil
	}
	str := string(b)
	return &str
}

// RoomRow is a room as the ChatLog holds it.
type RoomRow struct {
	ID        int64
	OwnerID   string
	Title     string
	CreatedAt time.Time
	// DeletedAt is when the room was deleted; zero while it exists.
	DeletedAt time.Time
	// Version is the version of the room stream's last event folded in.
	Version int64
}

func scanRoom(row pgx.Row) (RoomRow, error) {
	var (
		r       RoomRow
		deleted *time.Time
	)
	if err := row.Scan(&r.ID, &r.OwnerID, &r.Title, &r.CreatedAt, &deleted, &r.Version); err != nil {
		return RoomRow{}, err
	}
	r.CreatedAt = r.CreatedAt.UTC()
	if deleted != nil {
		r.DeletedAt = deleted.UTC()
	}
	return r, nil
}

// Room returns room id, deleted or not, and false when the ChatLog does
// not hold it (yet).
func (c *ChatLog) Room(ctx context.Context, id int64) (_ RoomRow, _ bool, err error) {
	defer markOutage(&err)
	r, err := scanRoom(c.pool.QueryRow(ctx, c.sql.room, id))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return RoomRow{}, false, nil
	case err != nil:
		return RoomRow{}, false, fmt.Errorf("postgres: read room %d: %w", id, err)
	}
	if err := c.openRoom(ctx, &r); err != nil {
		return RoomRow{}, false, fmt.Errorf("postgres: read room %d: %w", id, err)
	}
	return r, true, nil
}

// RoomsOf returns owner's rooms that are not deleted, newest first: at
// most limit of them (DefaultPageSize when limit is not positive, at most
// MaxPageSize).
func (c *ChatLog) RoomsOf(ctx context.Context, owner string, limit int) (_ []RoomRow, err error) {
	defer markOutage(&err)
	rows, err := c.pool.Query(ctx, c.sql.roomsOf, owner, pageSize(limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: list the rooms of %s: %w", owner, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (RoomRow, error) { return scanRoom(row) })
	if err != nil {
		return nil, fmt.Errorf("postgres: list the rooms of %s: %w", owner, err)
	}
	for i := range out {
		if err := c.openRoom(ctx, &out[i]); err != nil {
			return nil, fmt.Errorf("postgres: list the rooms of %s: %w", owner, err)
		}
	}
	return out, nil
}

func pageSize(limit int) int {
	if limit <= 0 {
		return DefaultPageSize
	}
	return min(limit, MaxPageSize)
}

// Messages returns a page of room roomID's conversation, newest first: at
// most limit messages (DefaultPageSize when limit is not positive, at most
// MaxPageSize) created and last changed before stream version before, or
// the newest when before is zero or negative. To read the next, older
// page, pass the Version of the oldest message returned. It returns nil
// when there are no such messages.
//
// Messages do not overlap in a room: an answer ends before the next
// question is posted, so paging by Version never skips or repeats one.
func (c *ChatLog) Messages(ctx context.Context, roomID int64, before int64, limit int) (_ []room.Message, err error) {
	defer markOutage(&err)
	if before <= 0 {
		before = math.MaxInt64
	}
	rows, err := c.pool.Query(ctx, c.sql.messages, roomID, before, pageSize(limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: read the messages of room %d before %d: %w", roomID, before, err)
	}
	defer rows.Close()
	var out []room.Message
	o := c.opener(ctx, roomID)
	for rows.Next() {
		var m room.Message
		if err := scanMessage(rows, &m); err != nil {
			return nil, fmt.Errorf("postgres: read the messages of room %d before %d: %w", roomID, before, err)
		}
		if err := o.message(&m); err != nil {
			return nil, fmt.Errorf("postgres: read the messages of room %d before %d: %w", roomID, before, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: read the messages of room %d before %d: %w", roomID, before, err)
	}
	return out, nil
}

// History returns room roomID's whole conversation, oldest first, and the
// version of the room stream's last event it reflects. Continue it with
// the stream's later events:
//
//	h := room.NewHistory()
//	h.Load(msgs, version)
//	// h.Apply each event after version
//
// It returns no messages and version domain.NoVersion (-1) when the room
// is not projected yet.
func (c *ChatLog) History(ctx context.Context, roomID int64) (_ []room.Message, _ int64, err error) {
	defer markOutage(&err)
	rows, err := c.pool.Query(ctx, c.sql.history, roomID)
	if err != nil {
		return nil, domain.NoVersion, fmt.Errorf("postgres: read the history of room %d: %w", roomID, err)
	}
	defer rows.Close()
	var (
		out     []room.Message
		version = domain.NoVersion
	)
	o := c.opener(ctx, roomID)
	for rows.Next() {
		var (
			m   room.Message
			has bool
		)
		if err := scanMessage(rows, &m, &version, &has); err != nil {
			return nil, domain.NoVersion, fmt.Errorf("postgres: read the history of room %d: %w", roomID, err)
		}
		if has {
			if err := o.message(&m); err != nil {
				return nil, domain.NoVersion, fmt.Errorf("postgres: read the history of room %d: %w", roomID, err)
			}
			out = append(out, m)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, domain.NoVersion, fmt.Errorf("postgres: read the history of room %d: %w", roomID, err)
	}
	return out, version, nil
}

// OpenAnswers returns the rooms whose answer the read model shows still
// streaming, and the position it reflects: its checkpoint, read in the
// same snapshot. An answer left open before that position is among the
// rooms; one opened after it is in the log after it.
func (c *ChatLog) OpenAnswers(ctx context.Context) (_ []int64, _ domain.Position, err error) {
	defer markOutage(&err)
	tx, err := c.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, domain.Position{}, fmt.Errorf("postgres: find open answers: %w", err)
	}
	defer tx.Rollback(ctx)
	pos, err := readCheckpoint(ctx, tx, c.name)
	if err != nil {
		return nil, domain.Position{}, err
	}
	rows, err := tx.Query(ctx, c.sql.openAnswers)
	if err != nil {
		return nil, domain.Position{}, fmt.Errorf("postgres: find open answers: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, domain.Position{}, fmt.Errorf("postgres: find open answers: %w", err)
	}
	return ids, pos, nil
}

// scanMessage scans the columns before (if any) and then a message's:
// id, role, text, status, sources, client_id, created_at, updated_at,
// version.
func scanMessage(rows pgx.Rows, m *room.Message, before ...any) error {
	var (
		id      [16]byte
		sources []byte
	)
	dest := append(before, &id, &m.Role, &m.Text, &m.Status, &sources, &m.ClientID, &m.CreatedAt, &m.UpdatedAt, &m.Version)
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	m.ID = id
	m.CreatedAt, m.UpdatedAt = m.CreatedAt.UTC(), m.UpdatedAt.UTC()
	if sources != nil {
		if err := json.Unmarshal(sources, &m.Sources); err != nil {
			return fmt.Errorf("decode the sources of message %s: %w", m.ID, err)
		}
	}
	return nil
}
