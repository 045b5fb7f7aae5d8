package privacy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/lru"
)

// WrappedKey is a room's data key as the KeyStore holds it.
type WrappedKey struct {
	Room    int64
	KID     string
	KEKID   string
	Wrapped []byte
}

// Errors of KeyStore.Get.
var (
	// ErrNoKey: the room has no key (it was never sealed for).
	ErrNoKey = errors.New("the room has no data key")
	// ErrErased: the room's key was destroyed; its content is gone.
	ErrErased = domain.Errorf(domain.ENOTFOUND, "the room was erased")
)

// KeyStore holds wrapped room keys. Its contract is in privacytest.
type KeyStore interface {
	// Get returns room's key, ErrNoKey when it has none, ErrErased when it
	// was destroyed.
	Get(ctx context.Context, room int64) (WrappedKey, error)
	// Create stores k unless the room has a key already (then it returns
	// that one) or was erased (ErrErased).
	Create(ctx context.Context, k WrappedKey) (WrappedKey, error)
	// Destroy destroys room's key for good, leaving a tombstone so no key
	// is created for the room again; it reports whether a key was
	// destroyed now (false when it was already, or never existed).
	Destroy(ctx context.Context, room int64, at time.Time) (bool, error)
}

// Defaults of KeyringConfig's zero values.
const (
	DefaultCacheSize = 10000
	DefaultCacheTTL  = time.Minute
)

// KeyringConfig configures a Keyring.
type KeyringConfig struct {
	// CacheSize bounds how many unwrapped keys are kept, least recently
	// used dropped first; zero means DefaultCacheSize.
	CacheSize int
	// CacheTTL is how long a cached key is used before the store is asked
	// again whether it still exists, so that a replica that missed a
	// RoomErased refuses the key after at most this long; zero means
	// DefaultCacheTTL.
	CacheTTL time.Duration
	// Rand is the source of keys and nonces; nil means crypto/rand.
	Rand io.Reader
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Keyring gives out rooms' unwrapped data keys: from its cache, else
// unwrapped from the KeyStore, creating them when asked.
type Keyring struct {
	store KeyStore
	keks  KEKs
	cfg   KeyringConfig
	cache *lru.Cache[int64, cached]
}

type cached struct {
	key *Key
	at  time.Time
}

// NewKeyring returns a Keyring over store and keks (at least one).
func NewKeyring(store KeyStore, keks KEKs, cfg KeyringConfig) (*Keyring, error) {
	if len(keks) == 0 {
		return nil, errors.New("a keyring needs at least one data key (PARLEY_DATA_KEY)")
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Keyring{store: store, keks: keks, cfg: cfg, cache: lru.New[int64, cached](cfg.CacheSize)}, nil
}

// KEKs returns the configured KEKs.
func (r *Keyring) KEKs() KEKs { return r.keks }

// Key returns room's key. When the room has none, create makes one;
// otherwise the error wraps ErrNoKey. An erased room's error wraps ErrErased.
func (r *Keyring) Key(ctx context.Context, room int64, create bool) (*Key, error) {
	if k := r.cached(room); k != nil {
		return k, nil
	}
	w, err := r.store.Get(ctx, room)
	if errors.Is(err, ErrNoKey) && create {
		w, err = r.create(ctx, room)
	}
	if err != nil {
		return nil, fmt.Errorf("room %d's data key: %w", room, err)
	}
	secret, err := r.keks.Unwrap(room, w.KID, w.KEKID, w.Wrapped)
	if err != nil {
		return nil, err
	}
	k, err := NewKey(room, w.KID, secret)
	if err != nil {
		return nil, err
	}
	r.put(k)
	return k, nil
}

func (r *Keyring) create(ctx context.Context, room int64) (WrappedKey, error) {
	secret := make([]byte, KeySize)
	id := make([]byte, 8)
	if _, err := io.ReadFull(r.cfg.Rand, secret); err != nil {
		return WrappedKey{}, fmt.Errorf("new key: %w", err)
	}
	if _, err := io.ReadFull(r.cfg.Rand, id); err != nil {
		return WrappedKey{}, fmt.Errorf("new key id: %w", err)
	}
	kid := hex.EncodeToString(id)
	kekID, wrapped, err := r.keks.Wrap(r.cfg.Rand, room, kid, secret)
	if err != nil {
		return WrappedKey{}, err
	}
	return r.store.Create(ctx, WrappedKey{Room: room, KID: kid, KEKID: kekID, Wrapped: wrapped})
}

// Destroy erases room's key: evicted here, destroyed in the store. It
// reports whether the key was destroyed now; destroying a destroyed key is
// not an error.
func (r *Keyring) Destroy(ctx context.Context, room int64) (bool, error) {
	r.Evict(room)
	done, err := r.store.Destroy(ctx, room, r.cfg.Now())
	if err != nil {
		return false, fmt.Errorf("destroy room %d's data key: %w", room, err)
	}
	return done, nil
}

// Evict drops room's key from the cache (a replica that sees RoomErased).
func (r *Keyring) Evict(room int64) { r.cache.Remove(room) }

// Cached reports how many keys the cache holds.
func (r *Keyring) Cached() int { return r.cache.Len() }

// cached returns room's key from the cache, unless it has been there for
// CacheTTL: then the store is asked again whether it still exists.
func (r *Keyring) cached(room int64) *Key {
	c, ok := r.cache.Get(room)
	if !ok {
		return nil
	}
	if r.cfg.Now().Sub(c.at) >= r.cfg.CacheTTL {
		r.cache.Remove(room)
		return nil
	}
	return c.key
}

func (r *Keyring) put(k *Key) { r.cache.Put(k.Room, cached{key: k, at: r.cfg.Now()}) }
