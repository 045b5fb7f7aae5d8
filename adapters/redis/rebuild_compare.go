package redis

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/projections"
)

// The memory rebuild's comparison (a dry run's): see rebuild.go.

// memDiff is what Compare counts: memories by key (room and user) and
// whole hash, owners by room.
type memDiff struct {
	Memories, Owners projections.DiffPart
}

// example notes key as one with a difference.
func example(p *projections.DiffPart, key string) {
	if len(p.Examples) < 5 {
		p.Examples = append(p.Examples, key)
	}
}

// Compare implements projections.Rebuildable: it reports how the shadow
// generation differs from the live one, both at the live checkpoint. It
// holds the live projection still, has catchUp bring the shadow to
// exactly that position, compares every key (refreshing the hold as it
// goes) and releases the live projection. Its parts are "rooms'
// memories" (examples: keys under their generation) and "room owners".
func (r *MemoryRebuild) Compare(ctx context.Context, catchUp projections.CatchUpFunc) (projections.Diff, error) {
	var diff projections.Diff
	if r.shadow == nil {
		return diff, errors.New("redis memory: compare: Prepare first")
	}
	h, err := r.takeHold(ctx)
	if err != nil {
		return diff, fmt.Errorf("redis memory: compare: %w", err)
	}
	defer h.release(ctx)
	gen, live, _, err := r.liveState(ctx)
	if err != nil {
		return diff, fmt.Errorf("redis memory: compare: %w", err)
	}
	if _, err := catchUp(ctx, live); err != nil {
		return diff, fmt.Errorf("redis memory: compare: catch generation %s up to %s: %w", r.shadow.gen, live.Position, err)
	}
	diff.Live = live.Position
	if diff.Shadow, err = r.shadow.Checkpoint(ctx); err != nil {
		return diff, err
	}
	d := memDiff{Memories: projections.DiffPart{What: "rooms' memories"}, Owners: projections.DiffPart{What: "room owners"}}
	lb, sb := generationBase(r.cfg.Prefix, gen), r.shadow.base(r.shadow.gen)
	// The live keys against the shadow's, then the shadow's only.
	if err := r.scanCompare(ctx, h, lb, sb, &d, false); err != nil {
		return diff, fmt.Errorf("redis memory: compare: %w", err)
	}
	if err := r.scanCompare(ctx, h, sb, lb, &d, true); err != nil {
		return diff, fmt.Errorf("redis memory: compare: %w", err)
	}
	if err := h.refresh(ctx); err != nil {
		return diff, fmt.Errorf("redis memory: compare: %w", err)
	}
	diff.Parts = []projections.DiffPart{d.Memories, d.Owners}
	return diff, nil
}

// scanCompare walks the memory keys under base a and compares each with
// the same key under base b; reverse counts only keys b lacks, as extra.
func (r *MemoryRebuild) scanCompare(ctx context.Context, h *hold, a, b string, d *memDiff, reverse bool) error {
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
						example(&d.Memories, s)
					}
					continue
				}
				d.Memories.Live++
				switch {
				case len(vb) == 0:
					d.Memories.Missing++
					example(&d.Memories, s)
				case !maps.Equal(va, vb):
					d.Memories.Differing++
					example(&d.Memories, s)
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

func (r *MemoryRebuild) compareOwners(ctx context.Context, a, b string, d *memDiff, reverse bool) error {
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
				example(&d.Owners, "room "+room)
			}
		case !ok:
			d.Owners.Live++
			d.Owners.Missing++
			example(&d.Owners, "room "+room)
		case vb != oa[room]:
			d.Owners.Live++
			d.Owners.Differing++
			example(&d.Owners, "room "+room)
		default:
			d.Owners.Live++
		}
	}
	return nil
}
