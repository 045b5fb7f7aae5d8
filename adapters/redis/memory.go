package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	goredis "github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/memory"
	"github.com/parleychat/parley/projections"
)

var (
	_ projections.Projection    = (*Memory)(nil)
	_ projections.ErrorRecorder = (*Memory)(nil)
	_ chat.MemoryReader         = (*Memory)(nil)
)

// Defaults of MemoryConfig.
const (
	DefaultPrefix     = "parley:"
	DefaultMemoryName = "memory"
)

// MemoryConfig configures a Memory. The zero value is the live read model.
type MemoryConfig struct {
	// Prefix starts every key the Memory reads and writes. Tests use a
	// unique one; a rebuild fills another (say "parley-next:") from the
	// start of the log. With Redis Cluster, make it a hash tag such as
	// "{parley}:": the script writes several keys at once, which must then
	// share a slot. Default DefaultPrefix.
	Prefix string
	// Name is the projection's name, in logs and status and in its
	// checkpoint's key. Default DefaultMemoryName.
	Name string
	// Generation pins the Memory to one generation of the read model
	// (such as "g7", what a MemoryRebuild fills). Default "": the Memory
	// follows the live generation, whichever the pointer key names, and
	// moves to a new one at a swap without a restart; see generation.go.
	Generation string
	// Log, when set, is where Apply rebuilds the memory of a room that
	// vanished from Redis (a FLUSHALL, a restart without persistence, an
	// eviction): a room whose owner the read model no longer knows, or
	// whose stored memory stops short of the events before the batch, is
	// folded again from the start of its stream, and Apply carries on.
	// Without it such a room stops the projection (an EventError).
	Log domain.StreamReader
	// Logger receives a warning for every room rebuilt from Log; nil
	// discards them.
	Logger *slog.Logger
	// Rebuilt, when set, is called for every room rebuilt from Log (a
	// metric of the read model's lost state).
	Rebuilt func()
	// Keys, when set, seals each room's summary and buffer under the
	// room's data key (privacy.Keyring), as chatd runs it: Redis then holds
	// no conversation text, and an erased room's memory cannot be read.
	Keys RoomKeys
}

// Memory is the Redis read model of rooms' conversation memory.
//
// Keys, under the base B of a generation (see generation.go: the prefix P
// for the generation "" of deployments older than rebuilds, "P<gen>:"
// for the others):
//
//	B memory:<room>:<user>        hash: summary, covers_through_version,
//	                              buffer (JSON memory.Turn list),
//	                              applied_version, deleted
//	B memory:owners               hash: room → owner, to find a room's key
//	B memory:checkpoint:<name>    hash: position, error
//
// A room's user is its owner, the only user who may post in it.
type Memory struct {
	client goredis.UniversalClient
	prefix string
	name   string
	pinned bool   // gen is fixed (MemoryConfig.Generation)
	gen    string // the pinned generation
	log    domain.StreamReader
	logger *slog.Logger
	onLost func()
	keys   RoomKeys

	mu  sync.Mutex
	cur string // the live generation last seen, when not pinned

	skipMu sync.Mutex
	skips  map[int64]skipRun // per room mid-answer: the events skipped since the last folded one
}

// NewMemory returns the Memory over client.
func NewMemory(client goredis.UniversalClient, cfg MemoryConfig) (*Memory, error) {
	if client == nil {
		return nil, errors.New("redis memory: a client is required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Name == "" {
		cfg.Name = DefaultMemoryName
	}
	for field, v := range map[string]string{"Prefix": cfg.Prefix, "Name": cfg.Name} {
		if strings.IndexFunc(v, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0 || len(v) > 100 {
			return nil, fmt.Errorf("redis memory: %s %q: use at most 100 printable characters without spaces", field, v)
		}
	}
	if cfg.Generation != "" && !validGeneration(cfg.Generation) {
		return nil, fmt.Errorf("redis memory: Generation %q: want g followed by digits, such as g1, or empty to follow the live generation", cfg.Generation)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Memory{client: client, prefix: cfg.Prefix, name: cfg.Name, pinned: cfg.Generation != "", gen: cfg.Generation,
		log: cfg.Log, logger: cfg.Logger, onLost: cfg.Rebuilt, keys: cfg.Keys}, nil
}

// Name implements projections.Projection.
func (m *Memory) Name() string { return m.name }

// Prefix returns the key prefix.
func (m *Memory) Prefix() string { return m.prefix }

func roomSuffix(roomID int64, user string) string {
	return "memory:" + strconv.FormatInt(roomID, 10) + ":" + user
}

const ownersSuffix = "memory:owners"

func (m *Memory) checkpointSuffix() string { return "memory:checkpoint:" + m.name }

// Hash fields.
const (
	fieldSummary  = "summary"
	fieldThrough  = "covers_through_version"
	fieldBuffer   = "buffer"
	fieldApplied  = "applied_version"
	fieldDeleted  = "deleted"
	fieldPosition = "position"
	fieldError    = "error"
)

// Checkpoint implements projections.Projection.
func (m *Memory) Checkpoint(ctx context.Context) (domain.Position, error) {
	h, err := m.readHash(ctx, m.checkpointSuffix())
	if err != nil {
		return domain.Start, fmt.Errorf("redis memory %s: read checkpoint: %w", m.name, err)
	}
	s, ok := h[fieldPosition]
	if !ok {
		return domain.Start, nil
	}
	p, err := parsePosition(s)
	if err != nil {
		return domain.Start, fmt.Errorf("redis memory %s: checkpoint: %w", m.name, err)
	}
	return p, nil
}

// RecordError implements projections.ErrorRecorder: the message is kept
// beside the checkpoint until the next successful Apply.
func (m *Memory) RecordError(ctx context.Context, msg string) error {
	base, err := m.resolveBase(ctx)
	if err == nil {
		err = m.client.HSet(ctx, base+m.checkpointSuffix(), fieldError, msg).Err()
	}
	if err != nil {
		return fmt.Errorf("redis memory %s: record error: %w", m.name, err)
	}
	return nil
}

// LastError returns the error RecordError kept, or "".
func (m *Memory) LastError(ctx context.Context) (string, error) {
	h, err := m.readHash(ctx, m.checkpointSuffix())
	if err != nil {
		return "", fmt.Errorf("redis memory %s: read last error: %w", m.name, err)
	}
	return h[fieldError], nil
}

// Load implements chat.MemoryReader: the memory of the room for user, or
// an empty Conversation at domain.NoVersion when the read model holds
// none. It makes one round trip, which reads the live generation's key
// when the Memory follows the live one; bound it with ctx.
func (m *Memory) Load(ctx context.Context, roomID int64, user string) (*memory.Conversation, error) {
	h, err := m.readHash(ctx, roomSuffix(roomID, user))
	if err != nil {
		return nil, fmt.Errorf("redis memory: load room %d: %w", roomID, err)
	}
	if err := m.openFields(ctx, roomID, h); err != nil {
		return nil, fmt.Errorf("redis memory: load room %d: %w", roomID, err)
	}
	c, err := decodeConversation(h)
	if err != nil {
		return nil, fmt.Errorf("redis memory: load room %d: %w", roomID, err)
	}
	return c, nil
}

// decodeConversation reads a memory hash; an empty one is a room the
// read model has not seen.
func decodeConversation(h map[string]string) (*memory.Conversation, error) {
	c := memory.NewConversation()
	if len(h) == 0 {
		return c, nil
	}
	var err error
	if c.Version, err = strconv.ParseInt(h[fieldApplied], 10, 64); err != nil {
		return nil, fmt.Errorf("field %s %q: %w", fieldApplied, h[fieldApplied], err)
	}
	if c.Through, err = strconv.ParseInt(h[fieldThrough], 10, 64); err != nil {
		return nil, fmt.Errorf("field %s %q: %w", fieldThrough, h[fieldThrough], err)
	}
	if err := json.Unmarshal([]byte(h[fieldBuffer]), &c.Turns); err != nil {
		return nil, fmt.Errorf("field %s: %w", fieldBuffer, err)
	}
	c.Summary, c.Deleted = h[fieldSummary], h[fieldDeleted] == "1"
	return c, nil
}

// checkpointGuard opens applyScript and saveCheckpointScript (same KEYS
// and first three ARGV): following the live generation, it refuses (-1)
// when the keys' generation is no longer the live one and (-2) while a
// rebuild holds the live projection still; a checkpoint at or after the
// batch's position makes the script a no-op (0).
const checkpointGuard = `
if ARGV[1] == '1' then
  if (redis.call('GET', KEYS[1]) or '') ~= ARGV[2] then return -1 end
  if redis.call('EXISTS', KEYS[2]) == 1 then return -2 end
end
local cp = redis.call('HGET', KEYS[3], 'position')
if cp and cp >= ARGV[3] then return 0 end
`

// applyScript writes one batch's effects and the checkpoint, atomically.
//
// KEYS: the live pointer, the hold, the checkpoint, the owners hash, then
// one memory key per room. ARGV: "1" when the Memory follows the live
// generation, the generation the keys belong to, the batch's last
// position; then per room, 7 values: room id, owner, new version,
// summary, covered version, buffer, deleted.
//
// After checkpointGuard (a swap since the Memory looked gives -1, a held
// projection -2, a batch already applied 0), a key whose applied_version already reaches the new
// version is left alone: its events are replays, or another writer got
// further. A key never moves backwards.
var applyScript = goredis.NewScript(checkpointGuard + `
for i = 1, #KEYS - 4 do
  local a = 4 + (i - 1) * 7
  local applied = tonumber(redis.call('HGET', KEYS[4 + i], 'applied_version') or '-1')
  if applied < tonumber(ARGV[a + 2]) then
    redis.call('HSET', KEYS[4 + i], 'applied_version', ARGV[a + 2], 'summary', ARGV[a + 3],
      'covers_through_version', ARGV[a + 4], 'buffer', ARGV[a + 5], 'deleted', ARGV[a + 6])
    redis.call('HSET', KEYS[4], ARGV[a], ARGV[a + 1])
  end
end
redis.call('HSET', KEYS[3], 'position', ARGV[3])
redis.call('HDEL', KEYS[3], 'error')
return 1
`)

// Apply implements projections.Projection. It folds the batch's events
// per room onto the room's stored memory (memory.Conversation.Apply) and
// writes every changed room and the checkpoint with one Lua script, in
// three round trips whatever the batch's size.
//
// Idempotence does not rest on the checkpoint alone: each key carries the
// stream version it applied, the fold skips events at or below it, and
// the script never moves a key backwards. So a batch applied again (after
// a lost reply, or from zero with the checkpoint gone, or by a projection
// of another name sharing the keys) changes nothing, and the checkpoint
// is only where the Runner resumes.
//
// Several processes may apply the same log into the same keys at once:
// each reads the checkpoint before the keys and skips the events at or
// before it, so every fold starts from a stored state and continues with
// the very next events of the room; each write is then the room's true
// memory at its version, and the highest version wins.
//
// A Memory that follows the live generation applies the batch to the
// generation live when its script runs: when a swap made another one
// live since it read the keys, it reads them again from the new one
// (whose checkpoint is at or after the old one's, so the events the new
// generation holds already are skipped). While a rebuild holds the live
// projection still (MemoryRebuild's swap), Apply waits, polling, until
// the hold ends or expires, or ctx ends.
//
// A room whose memory vanished from Redis is rebuilt from its stream
// (MemoryConfig.Log); without a Log, an event of a room whose owner is
// unknown is a *projections.EventError. An event the memory reads that
// does not decode (see memory.Conversation.Apply: chunks, for one, are
// not read) is a *projections.EventError too, returned before anything
// is written: the only failure that stops the projection.
func (m *Memory) Apply(ctx context.Context, batch []domain.RecordedEvent) error {
	if len(batch) == 0 {
		return nil
	}
	last := batch[len(batch)-1].Position
	if err := m.applyLive(ctx, batch, last); err != nil {
		var ee *projections.EventError
		if errors.As(err, &ee) {
			return err
		}
		return fmt.Errorf("redis memory %s: apply %d events up to %s: %w", m.name, len(batch), last, err)
	}
	return nil
}

// Outcomes of one attempt at a batch, when following the live generation.
var (
	errStale = errors.New("the live generation changed")
	errHeld  = errors.New("a rebuild holds the live projection")
)

// holdPoll is how often a held Apply looks whether the hold has ended.
const holdPoll = 10 * time.Millisecond

func (m *Memory) applyLive(ctx context.Context, batch []domain.RecordedEvent, last domain.Position) error {
	for {
		err := m.apply(ctx, m.generation(), batch, last)
		switch {
		case errors.Is(err, errStale):
			continue // m.cur is the new generation
		case errors.Is(err, errHeld):
			t := time.NewTimer(holdPoll)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		default:
			return err
		}
	}
}

// scriptOutcome maps the scripts' refusals to errStale and errHeld, and
// notes the new live generation.
func (m *Memory) scriptOutcome(ctx context.Context, res int64) error {
	switch res {
	case -1:
		gen, err := m.client.Get(ctx, m.prefix+pointerSuffix).Result()
		if err != nil && !errors.Is(err, goredis.Nil) {
			return fmt.Errorf("read the live generation: %w", err)
		}
		m.setGeneration(gen)
		return errStale
	case -2:
		return errHeld
	}
	return nil
}

// roomBatch is a batch's events of one room.
type roomBatch struct {
	id     int64
	owner  string
	events []domain.RecordedEvent
}

// apply applies the batch to generation gen: its one attempt.
func (m *Memory) apply(ctx context.Context, gen string, batch []domain.RecordedEvent, last domain.Position) error {
	base := m.base(gen)
	// Round trip 1: the checkpoint and the owners of the batch's rooms
	// (and whether gen is still live, and not held).
	rooms, err := groupRooms(batch)
	if err != nil {
		return err
	}
	if len(rooms) == 0 {
		if err := m.saveCheckpoint(ctx, gen, last); err != nil {
			return err
		}
		m.noteSkips(batch)
		return nil
	}
	ids := make([]string, len(rooms))
	for i, r := range rooms {
		ids[i] = strconv.FormatInt(r.id, 10)
	}
	pipe := m.client.Pipeline()
	cpCmd := pipe.HGet(ctx, base+m.checkpointSuffix(), fieldPosition)
	ownersCmd := pipe.HMGet(ctx, base+ownersSuffix, ids...)
	var liveCmd *goredis.StringCmd
	var heldCmd *goredis.IntCmd
	if !m.pinned {
		liveCmd = pipe.Get(ctx, m.prefix+pointerSuffix)
		heldCmd = pipe.Exists(ctx, m.prefix+holdSuffix)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return err
	}
	if !m.pinned {
		if live := liveCmd.Val(); live != gen {
			m.setGeneration(live)
			return errStale
		}
		if heldCmd.Val() > 0 {
			return errHeld
		}
	}
	cp := domain.Start
	if s, err := cpCmd.Result(); err == nil {
		if cp, err = parsePosition(s); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	}
	if !cp.Less(last) {
		return nil // applied already
	}
	owners := ownersCmd.Val()
	for i, r := range rooms {
		if s, ok := owners[i].(string); ok && r.owner == "" {
			r.owner = s
		}
		if r.owner == "" && m.log == nil {
			return projections.NewEventError(r.events[0], fmt.Errorf("room %d has no known owner: its RoomCreated was never applied to this read model; rebuild it from the start of the log", r.id))
		}
	}

	// Round trip 2: the stored memory of the rooms whose owner is known.
	pipe = m.client.Pipeline()
	gets := make([]*goredis.MapStringStringCmd, len(rooms))
	for i, r := range rooms {
		if r.owner != "" {
			gets[i] = pipe.HGetAll(ctx, base+roomSuffix(r.id, r.owner))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return err
	}

	// Fold, then round trip 3: the script.
	keys := []string{m.prefix + pointerSuffix, m.prefix + holdSuffix, base + m.checkpointSuffix(), base + ownersSuffix}
	args := []any{m.followFlag(), gen, formatPosition(last)}
	for i, r := range rooms {
		c := memory.NewConversation()
		if gets[i] != nil {
			h := gets[i].Val()
			if err := m.openFields(ctx, r.id, h); err != nil {
				return fmt.Errorf("room %d: stored memory: %w", r.id, err)
			}
			if c, err = decodeConversation(h); err != nil {
				return fmt.Errorf("room %d: stored memory: %w", r.id, err)
			}
		}
		if first := firstAfter(r.events, cp); first != nil && m.log != nil {
			stored := gets[i] != nil && len(gets[i].Val()) > 0
			lost, err := m.lost(ctx, r, batch, stored, c.Version, first.Version)
			if err != nil {
				return err
			}
			if lost {
				// The room's memory is not where the batch continues it: it
				// vanished (or never was, with its owner). Fold it again.
				if c, err = m.rebuildRoom(ctx, r, first.Version-1); err != nil {
					return err
				}
			}
		}
		was := c.Version
		for _, ev := range r.events {
			if !cp.Less(ev.Position) {
				continue
			}
			if err := c.Apply(ev); err != nil {
				return eventError(ev, err)
			}
		}
		if c.Version == was {
			continue // replays only
		}
		buf, err := json.Marshal(c.Turns)
		if err != nil {
			return fmt.Errorf("room %d: encode buffer: %w", r.id, err)
		}
		if c.Turns == nil {
			buf = []byte("[]")
		}
		summary, buffer, isDeleted, err := m.sealFields(ctx, r.id, c.Summary, string(buf), c.Deleted)
		if err != nil {
			return err
		}
		deleted := "0"
		if isDeleted {
			deleted = "1"
		}
		keys = append(keys, base+roomSuffix(r.id, r.owner))
		args = append(args, r.id, r.owner, c.Version, summary, c.Through, buffer, deleted)
	}
	res, err := applyScript.Run(ctx, m.client, keys, args...).Int64()
	if err != nil {
		return err
	}
	if err := m.scriptOutcome(ctx, res); err != nil {
		return err
	}
	m.noteSkips(batch)
	return nil
}

// saveCheckpoint moves the checkpoint forward only. KEYS and ARGV are
// applyScript's first three.
var saveCheckpointScript = goredis.NewScript(checkpointGuard + `
redis.call('HSET', KEYS[3], 'position', ARGV[3])
redis.call('HDEL', KEYS[3], 'error')
return 1
`)

func (m *Memory) saveCheckpoint(ctx context.Context, gen string, p domain.Position) error {
	keys := []string{m.prefix + pointerSuffix, m.prefix + holdSuffix, m.base(gen) + m.checkpointSuffix()}
	res, err := saveCheckpointScript.Run(ctx, m.client, keys, m.followFlag(), gen, formatPosition(p)).Int64()
	if err != nil {
		return err
	}
	return m.scriptOutcome(ctx, res)
}

// formatPosition writes a position so that string order is log order:
// both numbers zero-padded to 20 digits (Lua numbers cannot hold every
// uint64 exactly).
func formatPosition(p domain.Position) string {
	return fmt.Sprintf("%020d/%020d", p.Commit, p.Prepare)
}

func parsePosition(s string) (domain.Position, error) {
	c, p, ok := strings.Cut(s, "/")
	commit, err1 := strconv.ParseUint(c, 10, 64)
	prepare, err2 := strconv.ParseUint(p, 10, 64)
	if !ok || err1 != nil || err2 != nil || len(c) != 20 || len(p) != 20 {
		return domain.Start, fmt.Errorf("stored position %q is not COMMIT/PREPARE in 20 digits each", s)
	}
	return domain.Position{Commit: commit, Prepare: prepare}, nil
}
