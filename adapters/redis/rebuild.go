package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/domain"
)

// The memory's rebuild, and the protocol of its swap.
//
// A rebuild runs the live Memory's code (Memory.Apply) from position zero
// into a fresh generation (see generation.go), named in P rebuild:next
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
//     shadow's checkpoint S is at or after L; then point P live at the
//     shadow, note G in P rebuild:old, forget P rebuild:next and drop
//     the hold. A failed check rolls nothing back (nothing was written)
//     and Swap tries again (MemoryRebuildConfig.Attempts).
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
// run while they exist.

// Defaults of MemoryRebuildConfig.
const (
	DefaultHoldTimeout  = 10 * time.Second
	DefaultSwapAttempts = 5
)

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

// ErrOldCopyExists is a swap's refusal while the old generation of the
// previous swap is kept.
var ErrOldCopyExists = errors.New("redis memory: the old generation of the last swap is still there: run `chatctl projections drop-old memory`")

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
	// Compare and Discard.
	DryRun bool
	// HoldTimeout is the longest the live projection is held still by one
	// attempt of Swap or by Compare (the hold expires by itself after it,
	// should chatctl die). Default DefaultHoldTimeout.
	HoldTimeout time.Duration
	// Attempts is how often Swap tries. Default DefaultSwapAttempts.
	Attempts int
	// Logger receives retried swaps; nil discards them.
	Logger *slog.Logger
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
	live, err := NewMemory(client, MemoryConfig{Prefix: cfg.Prefix, Name: cfg.Name})
	if err != nil {
		return nil, err
	}
	cfg.Prefix, cfg.Name = live.prefix, live.name
	if cfg.HoldTimeout <= 0 {
		cfg.HoldTimeout = DefaultHoldTimeout
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = DefaultSwapAttempts
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &MemoryRebuild{client: client, cfg: cfg, live: live, log: log.With("projection", cfg.Name)}, nil
}

// Live is the live Memory, following the live generation.
func (r *MemoryRebuild) Live() *Memory { return r.live }

// Shadow is the Memory writing the shadow generation, once Prepare has
// returned.
func (r *MemoryRebuild) Shadow() *Memory { return r.shadow }

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
		return nil, fmt.Errorf("redis memory: another rebuild of %s%s is running (lock %s); wait for it or stop it", r.cfg.Prefix, r.cfg.Name, r.key(lockSuffix))
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

// Prepare picks the shadow generation: the one an interrupted rebuild
// left (resumed; never for a dry run), or a new one, emptied. A real
// rebuild fails with ErrOldCopyExists while the old generation of the
// last swap is kept.
func (r *MemoryRebuild) Prepare(ctx context.Context) (resumed bool, err error) {
	if !r.cfg.DryRun {
		old, err := r.OldExists(ctx)
		if err != nil {
			return false, err
		}
		if old {
			return false, ErrOldCopyExists
		}
	}
	gen, err := r.client.Get(ctx, r.shadowSlot()).Result()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return false, fmt.Errorf("redis memory: prepare the shadow: %w", err)
	}
	live, err := liveGeneration(ctx, r.client, r.cfg.Prefix)
	if err != nil {
		return false, fmt.Errorf("redis memory: prepare the shadow: %w", err)
	}
	if validGeneration(gen) && gen != live && !r.cfg.DryRun {
		r.shadow, err = NewMemory(r.client, MemoryConfig{Prefix: r.cfg.Prefix, Name: r.cfg.Name, Generation: gen})
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
	r.shadow, err = NewMemory(r.client, MemoryConfig{Prefix: r.cfg.Prefix, Name: r.cfg.Name, Generation: gen})
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

// liveState reads the live generation and its checkpoint.
func (r *MemoryRebuild) liveState(ctx context.Context) (gen string, cp domain.Position, raw string, err error) {
	if gen, err = liveGeneration(ctx, r.client, r.cfg.Prefix); err != nil {
		return "", cp, "", err
	}
	raw, err = r.client.HGet(ctx, generationBase(r.cfg.Prefix, gen)+r.live.checkpointSuffix(), fieldPosition).Result()
	switch {
	case errors.Is(err, goredis.Nil):
		return gen, domain.Start, "", nil
	case err != nil:
		return "", cp, "", fmt.Errorf("read the live checkpoint: %w", err)
	}
	cp, err = parsePosition(raw)
	return gen, cp, raw, err
}

// MemorySwap is what Swap did.
type MemorySwap struct {
	// Live is the old live generation's checkpoint, Shadow the new one's.
	Live, Shadow domain.Position
	// Old and New are the generations swapped out and in ("" is the
	// layout older than rebuilds).
	Old, New string
	// Attempts is how many attempts it took.
	Attempts int
}

// swapScript is step 4 of the protocol. KEYS: pointer, hold, old slot,
// shadow slot, live checkpoint, shadow checkpoint. ARGV: hold token, live
// generation, its checkpoint ("" for none), shadow generation.
var swapScript = goredis.NewScript(`
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 'the hold expired' end
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[2] then return 'another generation became live' end
local l = redis.call('HGET', KEYS[5], 'position') or ''
if l ~= ARGV[3] then return 'the live checkpoint moved' end
local s = redis.call('HGET', KEYS[6], 'position') or ''
if s < l then return 'the shadow is behind the live checkpoint' end
redis.call('SET', KEYS[1], ARGV[4])
redis.call('SET', KEYS[3], ARGV[2])
redis.call('DEL', KEYS[4], KEYS[2])
return 'ok'
`)

// Swap makes the shadow generation live, keeping the old one; catchUp
// must apply to Shadow() every event up to the position it is given and
// none after it.
func (r *MemoryRebuild) Swap(ctx context.Context, catchUp func(ctx context.Context, upTo domain.Position) error) (MemorySwap, error) {
	var res MemorySwap
	if r.shadow == nil || r.cfg.DryRun {
		return res, errors.New("redis memory: swap: Prepare a real rebuild first")
	}
	for res.Attempts = 1; ; res.Attempts++ {
		why, err := r.swapOnce(ctx, catchUp, &res)
		if err != nil {
			return res, fmt.Errorf("redis memory: swap: %w", err)
		}
		if why == "ok" {
			return res, nil
		}
		if res.Attempts >= r.cfg.Attempts {
			return res, fmt.Errorf("redis memory: swap: %s, %d times; the shadow is kept: rerun to resume", why, res.Attempts)
		}
		r.log.Warn("swap: retrying", "reason", why, "attempt", res.Attempts)
	}
}

func (r *MemoryRebuild) swapOnce(ctx context.Context, catchUp func(ctx context.Context, upTo domain.Position) error, res *MemorySwap) (string, error) {
	h, err := r.takeHold(ctx) // 1.
	if err != nil {
		return "", err
	}
	defer h.release(ctx)
	gen, live, raw, err := r.liveState(ctx) // 2.
	if err != nil {
		return "", err
	}
	if err := catchUp(ctx, live); err != nil { // 3.
		return "", fmt.Errorf("catch generation %s up to the live checkpoint %s: %w", r.shadow.gen, live, err)
	}
	shadowCP, err := r.shadow.Checkpoint(ctx)
	if err != nil {
		return "", err
	}
	keys := []string{r.key(pointerSuffix), r.key(holdSuffix), r.key(oldSuffix), r.key(nextSuffix),
		generationBase(r.cfg.Prefix, gen) + r.live.checkpointSuffix(), r.shadow.base(r.shadow.gen) + r.shadow.checkpointSuffix()}
	why, err := swapScript.Run(ctx, r.client, keys, h.tok, gen, raw, r.shadow.gen).Text() // 4.
	if err != nil {
		return "", err
	}
	*res = MemorySwap{Live: live, Shadow: shadowCP, Old: gen, New: r.shadow.gen, Attempts: res.Attempts}
	return why, nil
}

// OldExists reports whether the old generation of the last swap is kept.
func (r *MemoryRebuild) OldExists(ctx context.Context) (bool, error) {
	n, err := r.client.Exists(ctx, r.key(oldSuffix)).Result()
	if err != nil {
		return false, fmt.Errorf("redis memory: look for the old generation: %w", err)
	}
	return n > 0, nil
}

// DropOld deletes the old generation's keys (with SCAN and UNLINK) and
// reports whether there was one.
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

// Discard deletes the shadow generation and forgets it.
func (r *MemoryRebuild) Discard(ctx context.Context) error {
	gen, err := r.client.Get(ctx, r.shadowSlot()).Result()
	if errors.Is(err, goredis.Nil) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("redis memory: discard the shadow: %w", err)
	}
	live, err := liveGeneration(ctx, r.client, r.cfg.Prefix)
	if err != nil {
		return fmt.Errorf("redis memory: discard the shadow: %w", err)
	}
	if validGeneration(gen) && gen != live {
		if _, err := deleteMatching(ctx, r.client, globEscape(generationBase(r.cfg.Prefix, gen)+"memory:")+"*"); err != nil {
			return fmt.Errorf("redis memory: discard the shadow %s: %w", gen, err)
		}
	}
	return r.client.Del(ctx, r.shadowSlot()).Err()
}

// MemoryCopy is one generation of the memory, for status.
type MemoryCopy struct {
	Role       string // "live", "shadow", "dryrun" or "old"
	Generation string
	Checkpoint domain.Position
	Found      bool // it has a checkpoint
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
		c := MemoryCopy{Role: role, Generation: gen, LastError: h[fieldError]}
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

// MemoryDiff is what Compare found. Memories are compared by key (room
// and user) and whole hash; owners by room.
type MemoryDiff struct {
	Live, Shadow       domain.Position
	Memories, Owners   KeyDiff
	LiveGen, ShadowGen string
}

// KeyDiff counts the differences of one kind of entry.
type KeyDiff struct {
	Live, Shadow              int64
	Differing, Missing, Extra int64
	// Examples are some keys (under their generation) with a difference.
	Examples []string
}

func (d *KeyDiff) example(k string) {
	if len(d.Examples) < 5 {
		d.Examples = append(d.Examples, k)
	}
}

// Compare reports how the shadow generation differs from the live one,
// both at the live checkpoint: it holds the live projection still, has
// catchUp bring the shadow to exactly that position, compares every key
// (refreshing the hold as it goes) and releases the live projection.
func (r *MemoryRebuild) Compare(ctx context.Context, catchUp func(ctx context.Context, upTo domain.Position) error) (MemoryDiff, error) {
	var d MemoryDiff
	if r.shadow == nil {
		return d, errors.New("redis memory: compare: Prepare first")
	}
	h, err := r.takeHold(ctx)
	if err != nil {
		return d, fmt.Errorf("redis memory: compare: %w", err)
	}
	defer h.release(ctx)
	gen, live, _, err := r.liveState(ctx)
	if err != nil {
		return d, fmt.Errorf("redis memory: compare: %w", err)
	}
	if err := catchUp(ctx, live); err != nil {
		return d, fmt.Errorf("redis memory: compare: catch generation %s up to %s: %w", r.shadow.gen, live, err)
	}
	d.Live, d.LiveGen, d.ShadowGen = live, gen, r.shadow.gen
	if d.Shadow, err = r.shadow.Checkpoint(ctx); err != nil {
		return d, err
	}
	lb, sb := generationBase(r.cfg.Prefix, gen), r.shadow.base(r.shadow.gen)
	// The live keys against the shadow's, then the shadow's only.
	if err := r.scanCompare(ctx, h, lb, sb, &d, false); err != nil {
		return d, fmt.Errorf("redis memory: compare: %w", err)
	}
	if err := r.scanCompare(ctx, h, sb, lb, &d, true); err != nil {
		return d, fmt.Errorf("redis memory: compare: %w", err)
	}
	if err := h.refresh(ctx); err != nil {
		return d, fmt.Errorf("redis memory: compare: %w", err)
	}
	return d, nil
}

// scanCompare walks the memory keys under base a and compares each with
// the same key under base b; reverse counts only keys b lacks, as extra.
func (r *MemoryRebuild) scanCompare(ctx context.Context, h *hold, a, b string, d *MemoryDiff, reverse bool) error {
	var cursor uint64
	owners := false
	for {
		keys, next, err := r.client.Scan(ctx, cursor, globEscape(a+"memory:")+"*", 500).Result()
		if err != nil {
			return err
		}
		var rooms []string
		for _, k := range keys {
			rest := strings.TrimPrefix(k, a+"memory:")
			if rest == "owners" && !owners {
				owners = true // SCAN may return a key twice
				if err := r.compareOwners(ctx, a, b, d, reverse); err != nil {
					return err
				}
			} else if rest != "" && rest[0] >= '0' && rest[0] <= '9' {
				rooms = append(rooms, strings.TrimPrefix(k, a))
			}
		}
		if len(rooms) > 0 {
			pipe := r.client.Pipeline()
			ga := make([]*goredis.MapStringStringCmd, len(rooms))
			gb := make([]*goredis.MapStringStringCmd, len(rooms))
			for i, s := range rooms {
				ga[i], gb[i] = pipe.HGetAll(ctx, a+s), pipe.HGetAll(ctx, b+s)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return err
			}
			for i, s := range rooms {
				va, vb := ga[i].Val(), gb[i].Val()
				if len(va) == 0 { // deleted since the scan listed it
					continue
				}
				if reverse {
					d.Memories.Shadow++
					if len(vb) == 0 {
						d.Memories.Extra++
						d.Memories.example(s)
					}
					continue
				}
				d.Memories.Live++
				switch {
				case len(vb) == 0:
					d.Memories.Missing++
					d.Memories.example(s)
				case !maps.Equal(va, vb):
					d.Memories.Differing++
					d.Memories.example(s)
				}
			}
		}
		if err := h.refresh(ctx); err != nil {
			return err
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

func (r *MemoryRebuild) compareOwners(ctx context.Context, a, b string, d *MemoryDiff, reverse bool) error {
	oa, err := r.client.HGetAll(ctx, a+ownersSuffix).Result()
	if err != nil {
		return err
	}
	ob, err := r.client.HGetAll(ctx, b+ownersSuffix).Result()
	if err != nil {
		return err
	}
	for _, room := range slices.Sorted(maps.Keys(oa)) {
		vb, ok := ob[room]
		switch {
		case reverse:
			d.Owners.Shadow++
			if !ok {
				d.Owners.Extra++
				d.Owners.example("room " + room)
			}
		case !ok:
			d.Owners.Live++
			d.Owners.Missing++
			d.Owners.example("room " + room)
		case vb != oa[room]:
			d.Owners.Live++
			d.Owners.Differing++
			d.Owners.example("room " + room)
		default:
			d.Owners.Live++
		}
	}
	return nil
}

// Equal reports whether the comparison found no difference.
func (d MemoryDiff) Equal() bool {
	n := d.Memories.Differing + d.Memories.Missing + d.Memories.Extra + d.Owners.Differing + d.Owners.Missing + d.Owners.Extra
	return n == 0 && d.Live == d.Shadow
}
