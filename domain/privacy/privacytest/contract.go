package privacytest

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/domain/privacy"
)

// Store is what the contract exercises.
type Store interface {
	privacy.KeyStore
	privacy.KeyLister
}

// RunKeyStoreTests is the contract of a KeyStore and KeyLister: newStore
// returns an empty store.
func RunKeyStoreTests(t *testing.T, newStore func(t *testing.T) Store) {
	t.Run("create, get, first writer wins", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		if _, err := s.Get(ctx, 1); !errors.Is(err, privacy.ErrNoKey) {
			t.Fatalf("Get of a room without key: %v, want ErrNoKey", err)
		}
		a := privacy.WrappedKey{Room: 1, KID: "a", KEKID: "k1", Wrapped: []byte("wrapped-a")}
		b := privacy.WrappedKey{Room: 1, KID: "b", KEKID: "k1", Wrapped: []byte("wrapped-b")}
		var wg sync.WaitGroup
		got := make([]privacy.WrappedKey, 2)
		for i, k := range []privacy.WrappedKey{a, b} {
			wg.Go(func() {
				var err error
				if got[i], err = s.Create(ctx, k); err != nil {
					t.Errorf("Create %s: %v", k.KID, err)
				}
			})
		}
		wg.Wait()
		if got[0].KID != got[1].KID || !bytes.Equal(got[0].Wrapped, got[1].Wrapped) {
			t.Fatalf("two racing Creates returned different keys: %+v and %+v", got[0], got[1])
		}
		stored, err := s.Get(ctx, 1)
		if err != nil || stored.KID != got[0].KID || !bytes.Equal(stored.Wrapped, got[0].Wrapped) {
			t.Fatalf("Get = %+v, %v; want the winner %+v", stored, err, got[0])
		}
	})
	t.Run("destroy is for good and idempotent", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		mustCreate(t, s, privacy.WrappedKey{Room: 2, KID: "a", KEKID: "k1", Wrapped: []byte("w")})
		for i, want := range []bool{true, false} {
			done, err := s.Destroy(ctx, 2, time.Now())
			if err != nil || done != want {
				t.Fatalf("Destroy #%d = %v, %v; want %v", i+1, done, err, want)
			}
		}
		if _, err := s.Get(ctx, 2); !errors.Is(err, privacy.ErrErased) {
			t.Fatalf("Get after Destroy: %v, want ErrErased", err)
		}
		if _, err := s.Create(ctx, privacy.WrappedKey{Room: 2, KID: "new", KEKID: "k1", Wrapped: []byte("w2")}); !errors.Is(err, privacy.ErrErased) {
			t.Fatalf("Create after Destroy: %v, want ErrErased (an erased room gets no new key)", err)
		}
		if _, err := s.Destroy(ctx, 3, time.Now()); err != nil {
			t.Fatalf("Destroy of a room without key: %v", err)
		}
		if _, err := s.Create(ctx, privacy.WrappedKey{Room: 3, KID: "new", KEKID: "k1", Wrapped: []byte("w3")}); !errors.Is(err, privacy.ErrErased) {
			t.Fatalf("Create after Destroy of a keyless room: %v, want ErrErased", err)
		}
		keys, err := s.Keys(ctx, 0, 10)
		if err != nil || len(keys) != 0 {
			t.Fatalf("Keys after destroying all = %v, %v; want none", keys, err)
		}
	})
	t.Run("list, sample and rewrap", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		for room := int64(1); room <= 5; room++ {
			kek := "old"
			if room%2 == 0 {
				kek = "new"
			}
			mustCreate(t, s, privacy.WrappedKey{Room: room, KID: "k", KEKID: kek, Wrapped: []byte{byte(room)}})
		}
		page, err := s.Keys(ctx, 2, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) != 2 || page[0].Room != 3 || page[1].Room != 4 {
			t.Fatalf("Keys(after 2, limit 2) = %+v, want rooms 3 and 4", page)
		}
		sample, err := s.KEKSample(ctx)
		if err != nil {
			t.Fatal(err)
		}
		keks := map[string]bool{}
		for _, k := range sample {
			keks[k.KEKID] = true
		}
		if len(sample) != 2 || !keks["old"] || !keks["new"] {
			t.Fatalf("KEKSample = %v, want one key per KEK", sample)
		}
		ok, err := s.Rewrap(ctx, privacy.WrappedKey{Room: 1, KID: "k", KEKID: "new", Wrapped: []byte("re")}, "old")
		if err != nil || !ok {
			t.Fatalf("Rewrap = %v, %v", ok, err)
		}
		ok, err = s.Rewrap(ctx, privacy.WrappedKey{Room: 1, KID: "k", KEKID: "newer", Wrapped: []byte("re2")}, "old")
		if err != nil || ok {
			t.Fatalf("Rewrap from a KEK no longer used = %v, %v; want false", ok, err)
		}
		got, _ := s.Get(ctx, 1)
		if got.KEKID != "new" || string(got.Wrapped) != "re" {
			t.Fatalf("after Rewrap Get = %+v", got)
		}
	})
}

func mustCreate(t *testing.T, s Store, k privacy.WrappedKey) {
	t.Helper()
	if _, err := s.Create(context.Background(), k); err != nil {
		t.Fatal(err)
	}
}
