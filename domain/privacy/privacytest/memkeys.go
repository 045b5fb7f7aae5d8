package privacytest

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/parleychat/parley/domain/privacy"
)

var (
	_ privacy.KeyStore  = (*MemKeys)(nil)
	_ privacy.KeyLister = (*MemKeys)(nil)
)

// MemKeys is an in-memory KeyStore and KeyLister. Fail, when set, is
// returned by every call (a key store that is down).
type MemKeys struct {
	mu   sync.Mutex
	keys map[int64]privacy.WrappedKey
	gone map[int64]bool
	Fail error
}

// NewMemKeys returns an empty MemKeys.
func NewMemKeys() *MemKeys {
	return &MemKeys{keys: map[int64]privacy.WrappedKey{}, gone: map[int64]bool{}}
}

// Get implements privacy.KeyStore.
func (m *MemKeys) Get(_ context.Context, room int64) (privacy.WrappedKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.Fail != nil:
		return privacy.WrappedKey{}, m.Fail
	case m.gone[room]:
		return privacy.WrappedKey{}, privacy.ErrErased
	}
	k, ok := m.keys[room]
	if !ok {
		return privacy.WrappedKey{}, privacy.ErrNoKey
	}
	return k, nil
}

// Create implements privacy.KeyStore.
func (m *MemKeys) Create(ctx context.Context, k privacy.WrappedKey) (privacy.WrappedKey, error) {
	m.mu.Lock()
	if m.Fail == nil && !m.gone[k.Room] {
		if _, ok := m.keys[k.Room]; !ok {
			m.keys[k.Room] = k
		}
	}
	m.mu.Unlock()
	return m.Get(ctx, k.Room)
}

// Destroy implements privacy.KeyStore.
func (m *MemKeys) Destroy(_ context.Context, room int64, _ time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Fail != nil {
		return false, m.Fail
	}
	if m.gone[room] {
		return false, nil
	}
	m.gone[room] = true
	delete(m.keys, room)
	return true, nil
}

// Keys implements privacy.KeyLister.
func (m *MemKeys) Keys(_ context.Context, after int64, limit int) ([]privacy.WrappedKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []privacy.WrappedKey
	for _, k := range m.keys {
		if k.Room > after {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Room < out[j].Room })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, m.Fail
}

// Rewrap implements privacy.KeyLister.
func (m *MemKeys) Rewrap(_ context.Context, k privacy.WrappedKey, old string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.keys[k.Room]
	if !ok || cur.KEKID != old || cur.KID != k.KID {
		return false, m.Fail
	}
	m.keys[k.Room] = k
	return true, m.Fail
}

// KEKSample implements privacy.KeyLister.
func (m *MemKeys) KEKSample(context.Context) ([]privacy.WrappedKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[string]privacy.WrappedKey{}
	for _, k := range m.keys {
		if s, ok := seen[k.KEKID]; !ok || k.Room < s.Room {
			seen[k.KEKID] = k
		}
	}
	var out []privacy.WrappedKey
	for _, k := range seen {
		out = append(out, k)
	}
	return out, m.Fail
}
