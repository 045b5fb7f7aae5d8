package privacy

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// KeyLister is what rotation and the start check need of a KeyStore
// beyond KeyStore itself.
type KeyLister interface {
	// Keys returns up to limit live (not destroyed) keys of rooms above
	// after, in room order.
	Keys(ctx context.Context, after int64, limit int) ([]WrappedKey, error)
	// Rewrap stores k's new wrapping if the room's key is still wrapped
	// under oldKEKID (and reports whether it was).
	Rewrap(ctx context.Context, k WrappedKey, oldKEKID string) (bool, error)
	// KEKSample returns one live key wrapped under each KEK in use.
	KEKSample(ctx context.Context) ([]WrappedKey, error)
}

// Check makes sure the configured KEKs unwrap the stored keys: for each
// KEK the key table uses, one key is unwrapped. It fails, naming every KEK
// it lacks, when the configuration is wrong (a typo, a KEK dropped before
// rotating), so a process never starts writing beside keys it cannot read.
func (r *Keyring) Check(ctx context.Context, l KeyLister) error {
	sample, err := l.KEKSample(ctx)
	if err != nil {
		return fmt.Errorf("check the data keys: %w", err)
	}
	var bad []string
	for _, w := range sample {
		if _, err := r.keks.Unwrap(w.Room, w.KID, w.KEKID, w.Wrapped); err != nil {
			bad = append(bad, err.Error())
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("the configured data keys (PARLEY_DATA_KEY or PARLEY_DATA_KEY_FILE) cannot read the stored room keys; configure the key(s) they were wrapped with, first the new one when rotating:\n  %s", strings.Join(bad, "\n  "))
	}
	return nil
}

// RotateBatch is how many keys Rotate rewraps per read.
const RotateBatch = 500

// Rotate rewraps every live key not wrapped under the first KEK with it,
// calling progress after each batch with the keys looked at and rewrapped
// so far. Run it after putting the new KEK first in the list and before
// removing the old one. It can be stopped and run again.
func (r *Keyring) Rotate(ctx context.Context, l KeyLister, progress func(seen, rewrapped int)) (int, error) {
	var after int64
	seen, done := 0, 0
	for {
		keys, err := l.Keys(ctx, after, RotateBatch)
		if err != nil {
			return done, fmt.Errorf("rotate: list keys after room %d: %w", after, err)
		}
		for _, w := range keys {
			after = w.Room
			seen++
			if w.KEKID == r.keks[0].ID {
				continue
			}
			secret, err := r.keks.Unwrap(w.Room, w.KID, w.KEKID, w.Wrapped)
			if err != nil {
				return done, fmt.Errorf("rotate: %w", err)
			}
			kekID, wrapped, err := r.keks.Wrap(r.cfg.Rand, w.Room, w.KID, secret)
			if err != nil {
				return done, fmt.Errorf("rotate: %w", err)
			}
			ok, err := l.Rewrap(ctx, WrappedKey{Room: w.Room, KID: w.KID, KEKID: kekID, Wrapped: wrapped}, w.KEKID)
			if err != nil {
				return done, fmt.Errorf("rotate room %d's key: %w", w.Room, err)
			}
			if ok {
				done++
			}
		}
		if progress != nil {
			progress(seen, done)
		}
		if len(keys) < RotateBatch {
			return done, nil
		}
	}
}

// errorsIsErased reports whether err says the room was erased.
func errorsIsErased(err error) bool { return errors.Is(err, ErrErased) }
