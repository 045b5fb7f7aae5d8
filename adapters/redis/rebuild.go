package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/projections"
)

// The memory's rebuild, and the protocol of its swap.
//
// MemoryRebuild is the memory's projections.Rebuildable: the protocol
// (projections.Rebuild) runs the live Memory's code (Memory.Apply) from
// position zero into a fresh generation (see generation.go), named in P rebuild:next
// (P rebuild:dryrun for a dry run) so that an interrupted rebuild
// resumes from the generation's checkpoint. Once it has caught up with
// the log, Swap makes it live while chatd's in-process Memory keeps
// applying new events to whatever generation is live:
//
//  1. Take the hold: P live:hold, with a time to live
//     (MemoryRebuildConfig.HoldTimeout). Every Apply of a Memory that
//     follows the live generation checks it in its write script and
//     waits while it exists: from the moment it is set, no live batch
//     writes (one in flight has been written: a script runs alone).
//  2. Read the live generation G and its checkpoint L.
//  3. Catch the shadow up to exactly L (the catchUp callback).
//  4. In one script: check that the hold is still ours, that G is still
//     live with checkpoint L (the hold may have expired), and that the
//     shadow's checkpoint S is at or after what the callback asked for
//     (L, or nothing when L belongs to another log); then point P live
//     at the shadow, note G in P rebuild:old, forget P rebuild:next and
//     drop the hold. A failed check writes nothing:
//     projections.ErrSwapContended (or ErrShadowBehind), and the
//     protocol (projections.Rebuild) tries again.
//
// Chatd's Memory sees the new generation at its next Load (which reads
// the pointer in the same script as the hash) and at its next Apply
// (whose script refuses to write to a generation that is no longer live;
// Apply then reads the new one's checkpoint, at S >= L, and skips the
// events the shadow holds already). Nothing written live is lost: the
// shadow holds every event up to L, and nothing was written live after L
// but under the hold.
//
// The old generation's keys stay until DropOld; a further swap refuses to
// run while they exist (projections.ErrOldCopyExists).

// DefaultHoldTimeout is MemoryRebuildConfig.HoldTimeout's default.
const DefaultHoldTimeout = 10 * time.Second

// Key suffixes of the rebuild's state under the prefix.
const (
	nextSuffix   = "rebuild:next"
	dryRunSuffix = "rebuild:dryrun"
	oldSuffix    = "rebuild:old"
	lockSuffix   = "rebuild:lock"
	seqSuffix    = "rebuild:generations"
)

// lockTTL is how long the rebuild lock outlives a process that died
// holding it; a live holder refreshes it every third of that.
const lockTTL = 30 * time.Second

var _ projections.Rebuildable = (*MemoryRebuild)(nil)

// MemoryRebuildConfig configures a MemoryRebuild. The zero value rebuilds
// the live memory under DefaultPrefix.
type MemoryRebuildConfig struct {
	// Prefix is the live Memory's (MemoryConfig.Prefix). Default
	// DefaultPrefix.
	Prefix string
	// Name is the live Memory's name (MemoryConfig.Name), whose
	// checkpoint the shadow writes. Default DefaultMemoryName.
	Name string
	// DryRun rebuilds into a scratch generation, always from scratch, for
	// a dry run.
	DryRun bool
	// HoldTimeout is the longest the live projection is held still by one
	// attempt of Swap or by Compare (the hold expires by itself after it,
	// should chatctl die). Default DefaultHoldTimeout.
	HoldTimeout time.Duration
	// Logger receives the rebuild lock's troubles; nil discards them.
	Logger *slog.Logger
	// Keys seals the rebuilt memory as the live one is sealed
	// (MemoryConfig.Keys).
	Keys RoomKeys
}

// MemoryRebuild rebuilds the live Memory into a new generation and swaps
// it in; see the protocol above.
type MemoryRebuild struct {
	client goredis.UniversalClient
	cfg    MemoryRebuildConfig
	live   *Memory
	shadow *Memory // set by Prepare
	log    *slog.Logger
}

// NewMemoryRebuild returns the rebuild of the live Memory. It changes
// nothing until Prepare.
func NewMemoryRebuild(client goredis.UniversalClient, cfg MemoryRebuildConfig) (*MemoryRebuild, error) {
	live, err := NewMemory(client, MemoryConfig{Prefix: cfg.Prefix, Name: cfg.Name, Keys: cfg.Keys})
	if err != nil {
		return nil, err
	}
	cfg.Prefix, cfg.Name = live.prefix, live.name
	if cfg.HoldTimeout <= 0 {
		cfg.HoldTimeout = DefaultHoldTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &MemoryRebuild{client: client, cfg: cfg, live: live, log: log.With("projection", cfg.Name)}, nil
}

// Live implements projections.Rebuildable: the Memory following the live
// generation.
func (r *MemoryRebuild) Live() projections.Projection { return r.live }

func (r *MemoryRebuild) key(suffix string) string { return r.cfg.Prefix + suffix }

func (r *MemoryRebuild) shadowSlot() string {
	if r.cfg.DryRun {
		return r.key(dryRunSuffix)
	}
	return r.key(nextSuffix)
}

func token() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// releaseScript deletes KEYS[1] when it holds ARGV[1].
var releaseScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// refreshScript extends KEYS[1] by ARGV[2] ms when it holds ARGV[1].
var refreshScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`)

// Lock takes the rebuild lock, so that two rebuilds of the memory never
// run at once; unlock releases it. It fails at once when another process
// holds it. A goroutine refreshes it until unlock, which waits for it.
func (r *MemoryRebuild) Lock(ctx context.Context) (unlock func(), err error) {
	tok := token()
	ok, err := r.client.SetNX(ctx, r.key(lockSuffix), tok, lockTTL).Result()
	if err != nil {
		return nil, fmt.Errorf("redis memory: lock the rebuild: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("redis memory: %w (%s%s, lock %s); wait for it or stop it", projections.ErrRebuildRunning, r.cfg.Prefix, r.cfg.Name, r.key(lockSuffix))
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(lockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
				if err := refreshScript.Run(rctx, r.client, []string{r.key(lockSuffix)}, tok, lockTTL.Milliseconds()).Err(); err != nil && rctx.Err() == nil {
					r.log.Warn("rebuild: could not refresh the rebuild lock", "error", err)
				}
			}
		}
	})
	return func() {
		cancel()
		wg.Wait()
		uctx, ucancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ucancel()
		_ = releaseScript.Run(uctx, r.client, []string{r.key(lockSuffix)}, tok).Err()
	}, nil
}

// Prepare implements projections.Rebuildable: it takes the rebuild lock
// (Lock) and picks the shadow generation: the one an interrupted rebuild
// left (resumed; never for a dry run), or a new one, emptied.
func (r *MemoryRebuild) Prepare(ctx context.Context) (projections.Projection, bool, func(), error) {
	unlock, err := r.Lock(ctx)
	if err != nil {
		return nil, false, nil, err
	}
	resumed, err := r.prepareShadow(ctx)
	if err != nil {
		unlock()
		return nil, false, nil, err
	}
	return r.shadow, resumed, unlock, nil
}

func (r *MemoryRebuild) prepareShadow(ctx context.Context) (resumed bool, err error) {
	gen, err := r.client.Get(ctx, r.shadowSlot()).Result()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return false, fmt.Errorf("redis memory: prepare the shadow: %w", err)
	}
	live, err := liveGeneration(ctx, r.client, r.cfg.Prefix)
	if err != nil {
		return false, fmt.Errorf("redis memory: prepare the shadow: %w", err)
	}
	if validGeneration(gen) && gen != live && !r.cfg.DryRun {
		r.shadow, err = NewMemory(r.client, MemoryConfig{Prefix: r.cfg.Prefix, Name: r.cfg.Name, Generation: gen, Keys: r.cfg.Keys})
		return true, err
	}
	if validGeneration(gen) && gen != live {
		if _, err := deleteMatching(ctx, r.client, globEscape(generationBase(r.cfg.Prefix, gen))+"*"); err != nil {
			return false, fmt.Errorf("redis memory: drop the scratch generation %s: %w", gen, err)
		}
	}
	n, err := r.client.Incr(ctx, r.key(seqSuffix)).Result()
	if err != nil {
		return false, fmt.Errorf("redis memory: number a new generation: %w", err)
	}
	gen = fmt.Sprintf("g%d", n)
	if _, err := deleteMatching(ctx, r.client, globEscape(generationBase(r.cfg.Prefix, gen))+"*"); err != nil {
		return false, fmt.Errorf("redis memory: empty the new generation %s: %w", gen, err)
	}
	if err := r.client.Set(ctx, r.shadowSlot(), gen, 0).Err(); err != nil {
		return false, fmt.Errorf("redis memory: note the shadow generation: %w", err)
	}
	r.shadow, err = NewMemory(r.client, MemoryConfig{Prefix: r.cfg.Prefix, Name: r.cfg.Name, Generation: gen, Keys: r.cfg.Keys})
	return false, err
}

// hold is a taken hold on the live projection.
type hold struct {
	r   *MemoryRebuild
	tok string
}

// takeHold sets the hold, waiting up to HoldTimeout for one left by a
// process that died.
func (r *MemoryRebuild) takeHold(ctx context.Context) (*hold, error) {
	tok := token()
	deadline := time.Now().Add(r.cfg.HoldTimeout + time.Second)
	for {
		ok, err := r.client.SetNX(ctx, r.key(holdSuffix), tok, r.cfg.HoldTimeout).Result()
		if err != nil {
			return nil, fmt.Errorf("hold the live projection: %w", err)
		}
		if ok {
			return &hold{r: r, tok: tok}, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("hold the live projection: %s is held by another process", r.key(holdSuffix))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (h *hold) refresh(ctx context.Context) error {
	n, err := refreshScript.Run(ctx, h.r.client, []string{h.r.key(holdSuffix)}, h.tok, h.r.cfg.HoldTimeout.Milliseconds()).Int64()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("the hold on the live projection expired (it lasts %s): try again", h.r.cfg.HoldTimeout)
	}
	return nil
}

func (h *hold) release(ctx context.Context) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = releaseScript.Run(rctx, h.r.client, []string{h.r.key(holdSuffix)}, h.tok).Err()
}

// liveState reads the live generation and its checkpoint, as stored
// (raw) and parsed.
func (r *MemoryRebuild) liveState(ctx context.Context) (gen string, cp projections.Checkpoint, raw string, err error) {
	if gen, err = liveGeneration(ctx, r.client, r.cfg.Prefix); err != nil {
		return "", cp, "", err
	}
	h, err := r.client.HGetAll(ctx, generationBase(r.cfg.Prefix, gen)+r.live.checkpointSuffix()).Result()
	if err != nil {
		return "", cp, "", fmt.Errorf("read the live checkpoint: %w", err)
	}
	raw, cp.Log = h[fieldPosition], h[fieldLog]
	if raw == "" {
		return gen, cp, "", nil
	}
	cp.Position, err = parsePosition(raw)
	return gen, cp, raw, err
}

// swapScript is step 4 of the protocol. KEYS: pointer, hold, old slot,
// shadow slot, live checkpoint, shadow checkpoint. ARGV: hold token, live
// generation, its checkpoint ("" for none), shadow generation, the
// position the shadow must have reached ("" for none).
var swapScript = goredis.NewScript(`
if redis.call('EXISTS', KEYS[3]) == 1 then return 'old' end
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 'the hold expired' end
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[2] then return 'another generation became live' end
local l = redis.call('HGET', KEYS[5], 'position') or ''
if l ~= ARGV[3] then return 'the live checkpoint moved' end
local s = redis.call('HGET', KEYS[6], 'position') or ''
if s < ARGV[5] then return 'behind' end
redis.call('SET', KEYS[1], ARGV[4])
redis.call('SET', KEYS[3], ARGV[2])
redis.call('DEL', KEYS[4], KEYS[2])
return 'ok'
`)

// Swap implements projections.Rebuildable: it makes the shadow
// generation live, keeping the old one, following the protocol above.
func (r *MemoryRebuild) Swap(ctx context.Context, catchUp projections.CatchUpFunc) (projections.SwapResult, error) {
	var res projections.SwapResult
	if r.shadow == nil || r.cfg.DryRun {
		return res, errors.New("redis memory: swap: Prepare a real rebuild first")
	}
	h, err := r.takeHold(ctx) // 1.
	if err != nil {
		return res, fmt.Errorf("redis memory: swap: %w", err)
	}
	defer h.release(ctx)
	gen, live, raw, err := r.liveState(ctx) // 2.
	if err != nil {
		return res, fmt.Errorf("redis memory: swap: %w", err)
	}
	res.Live = live.Position
	need, err := catchUp(ctx, live) // 3.
	if err != nil {
		return res, fmt.Errorf("redis memory: swap: catch generation %s up to the live checkpoint %s: %w", r.shadow.gen, live.Position, err)
	}
	if res.Shadow, err = r.shadow.Checkpoint(ctx); err != nil {
		return res, err
	}
	mustReach := ""
	if !need.IsZero() {
		mustReach = formatPosition(need)
	}
	keys := []string{r.key(pointerSuffix), r.key(holdSuffix), r.key(oldSuffix), r.key(nextSuffix),
		generationBase(r.cfg.Prefix, gen) + r.live.checkpointSuffix(), r.shadow.base(r.shadow.gen) + r.shadow.checkpointSuffix()}
	why, err := swapScript.Run(ctx, r.client, keys, h.tok, gen, raw, r.shadow.gen, mustReach).Text() // 4.
	switch {
	case err != nil:
		return res, fmt.Errorf("redis memory: swap: %w", err)
	case why == "ok":
		return res, nil
	case why == "old":
		return res, fmt.Errorf("redis memory: swap: %w (%s)", projections.ErrOldCopyExists, r.key(oldSuffix))
	case why == "behind":
		return res, fmt.Errorf("redis memory: swap: %w: generation %s is at %s, before %s", projections.ErrShadowBehind, r.shadow.gen, res.Shadow, need)
	}
	return res, fmt.Errorf("redis memory: swap: %w: %s", projections.ErrSwapContended, why)
}

// OldCopy implements projections.Rebuildable: where the old generation
// of the last swap is kept, or "" when there is none.
func (r *MemoryRebuild) OldCopy(ctx context.Context) (string, error) {
	old, err := r.client.Get(ctx, r.key(oldSuffix)).Result()
	switch {
	case errors.Is(err, goredis.Nil):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("redis memory: look for the old generation: %w", err)
	case old == "":
		return "the keys " + r.cfg.Prefix + "memory:* (the layout older than generations)", nil
	}
	return fmt.Sprintf("generation %q (keys %s%s:memory:*)", old, r.cfg.Prefix, old), nil
}

// DropOld implements projections.Rebuildable: it deletes the old
// generation's keys (with SCAN and UNLINK) and reports whether there was
// one.
func (r *MemoryRebuild) DropOld(ctx context.Context) (bool, error) {
	old, err := r.client.Get(ctx, r.key(oldSuffix)).Result()
	if errors.Is(err, goredis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("redis memory: drop the old generation: %w", err)
	}
	live, err := liveGeneration(ctx, r.client, r.cfg.Prefix)
	if err != nil {
		return false, fmt.Errorf("redis memory: drop the old generation: %w", err)
	}
	if old != live {
		// Generation "" is P memory:..., which no other generation's keys
		// (P g<n>:memory:...) match.
		if _, err := deleteMatching(ctx, r.client, globEscape(generationBase(r.cfg.Prefix, old)+"memory:")+"*"); err != nil {
			return false, fmt.Errorf("redis memory: drop the old generation %q: %w", old, err)
		}
	}
	if err := r.client.Del(ctx, r.key(oldSuffix)).Err(); err != nil {
		return false, fmt.Errorf("redis memory: drop the old generation: %w", err)
	}
	return true, nil
}

// DropShadow implements projections.Rebuildable: it deletes the shadow
// generation and forgets it, and reports whether there was one.
func (r *MemoryRebuild) DropShadow(ctx context.Context) (bool, error) {
	gen, err := r.client.Get(ctx, r.shadowSlot()).Result()
	if errors.Is(err, goredis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("redis memory: drop the shadow: %w", err)
	}
	live, err := liveGeneration(ctx, r.client, r.cfg.Prefix)
	if err != nil {
		return false, fmt.Errorf("redis memory: drop the shadow: %w", err)
	}
	if validGeneration(gen) && gen != live {
		if _, err := deleteMatching(ctx, r.client, globEscape(generationBase(r.cfg.Prefix, gen)+"memory:")+"*"); err != nil {
			return false, fmt.Errorf("redis memory: drop the shadow %s: %w", gen, err)
		}
	}
	return true, r.client.Del(ctx, r.shadowSlot()).Err()
}

// MemoryCopy is one generation of the memory, for status.
type MemoryCopy struct {
	Role       string // "live", "shadow", "dryrun" or "old"
	Generation string
	Checkpoint domain.Position
	Found      bool   // it has a checkpoint
	Log        string // the log the checkpoint belongs to, "" for none yet
	LastError  string
}

// Copies lists the live generation and those a rebuild keeps.
func (r *MemoryRebuild) Copies(ctx context.Context) ([]MemoryCopy, error) {
	var out []MemoryCopy
	live, err := liveGeneration(ctx, r.client, r.cfg.Prefix)
	if err != nil {
		return nil, err
	}
	add := func(role, gen string) error {
		h, err := r.client.HGetAll(ctx, generationBase(r.cfg.Prefix, gen)+r.live.checkpointSuffix()).Result()
		if err != nil {
			return fmt.Errorf("redis memory: read the checkpoint of generation %q: %w", gen, err)
		}
		c := MemoryCopy{Role: role, Generation: gen, Log: h[fieldLog], LastError: h[fieldError]}
		if s, ok := h[fieldPosition]; ok {
			if c.Checkpoint, err = parsePosition(s); err != nil {
				return fmt.Errorf("redis memory: generation %q: %w", gen, err)
			}
			c.Found = true
		}
		out = append(out, c)
		return nil
	}
	if err := add("live", live); err != nil {
		return nil, err
	}
	for _, s := range []struct{ role, key string }{{"shadow", nextSuffix}, {"dryrun", dryRunSuffix}, {"old", oldSuffix}} {
		gen, err := r.client.Get(ctx, r.key(s.key)).Result()
		if errors.Is(err, goredis.Nil) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := add(s.role, gen); err != nil {
			return nil, err
		}
	}
	return out, nil
}
