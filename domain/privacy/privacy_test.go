package privacy_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/inmem"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/audit"
	"github.com/parleychat/parley/domain/privacy"
	"github.com/parleychat/parley/domain/privacy/privacytest"
	"github.com/parleychat/parley/domain/room"
)

func kek(t *testing.T, b byte) privacy.KEK {
	t.Helper()
	k, err := privacy.NewKEK(bytes.Repeat([]byte{b}, privacy.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeySealOpen(t *testing.T) {
	k, err := privacy.NewKey(7, "kid1", bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := privacy.NewKey(7, "kid1", bytes.Repeat([]byte{2}, 32))
	e := k.Seal([]byte("income 1234"), []byte("ad"))
	if bytes.Contains(e.CT, []byte("income")) {
		t.Fatal("ciphertext holds the plaintext")
	}
	if again := k.Seal([]byte("income 1234"), []byte("ad")); !cmp.Equal(again, e) {
		t.Errorf("sealing the same thing twice differs: a retried append would break the chain")
	}
	if diff := k.Seal([]byte("income 1235"), []byte("ad")); bytes.Equal(diff.N, e.N) {
		t.Errorf("two plaintexts share a nonce")
	}
	tampered := e
	tampered.CT = append([]byte(nil), e.CT...)
	tampered.CT[0] ^= 1
	for _, tc := range []struct {
		name string
		key  *privacy.Key
		env  privacy.Envelope
		ad   string
		ok   bool
	}{
		{"same key and ad", k, e, "ad", true},
		{"other ad", k, e, "ad2", false},
		{"other key", other, e, "ad", false},
		{"tampered", k, tampered, "ad", false},
		{"other version", k, privacy.Envelope{Enc: 2, Kid: e.Kid, N: e.N, CT: e.CT}, "ad", false},
	} {
		p, err := tc.key.Open(tc.env, []byte(tc.ad))
		if tc.ok && (err != nil || string(p) != "income 1234") {
			t.Errorf("%s: Open = %q, %v", tc.name, p, err)
		}
		if !tc.ok && err == nil {
			t.Errorf("%s: Open succeeded", tc.name)
		}
	}
	s := k.SealText("hello", []byte("x"))
	env, ok := privacy.ParseEnvelope(s)
	if !ok {
		t.Fatalf("ParseEnvelope(%s) failed", s)
	}
	if p, err := k.Open(env, []byte("x")); err != nil || string(p) != "hello" {
		t.Errorf("SealText round trip = %q, %v", p, err)
	}
	if _, ok := privacy.ParseEnvelope("hello {not json}"); ok {
		t.Errorf("plain text parsed as an envelope")
	}
}

func TestParseKEK(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{strings.Repeat("ab", 32), true},
		{"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=", true},
		{strings.Repeat("ab", 31), false},
		{"password", false},
		{"", false},
	} {
		_, err := privacy.ParseKEK(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseKEK(%q) err = %v, want ok %v", tc.in, err, tc.ok)
		}
		if err != nil && tc.in != "" && strings.Contains(err.Error(), tc.in) {
			t.Errorf("ParseKEK's error repeats the secret: %v", err)
		}
	}
}

func newRing(t *testing.T, keys *privacytest.MemKeys, cfg privacy.KeyringConfig, keks ...privacy.KEK) *privacy.Keyring {
	t.Helper()
	r, err := privacy.NewKeyring(keys, keks, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestKeyringCacheDestroyRotate(t *testing.T) {
	ctx := t.Context()
	keys := privacytest.NewMemKeys()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	old, fresh := kek(t, 1), kek(t, 2)
	r := newRing(t, keys, privacy.KeyringConfig{CacheSize: 2, CacheTTL: time.Minute, Now: clock}, old)
	if _, err := r.Key(ctx, 1, false); !errors.Is(err, privacy.ErrNoKey) {
		t.Fatalf("Key without create: %v, want ErrNoKey", err)
	}
	k1, err := r.Key(ctx, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	for room := int64(2); room <= 4; room++ {
		if _, err := r.Key(ctx, room, true); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.Cached(); n != 2 {
		t.Errorf("cache holds %d keys, bound 2", n)
	}
	// The store down: a cached key is served, an evicted one is not.
	keys.Fail = errors.New("down")
	if _, err := r.Key(ctx, 4, false); err != nil {
		t.Errorf("cached key 4: %v", err)
	}
	if _, err := r.Key(ctx, 1, false); err == nil {
		t.Errorf("key 1 was served though the cache's bound evicted it")
	}
	now = now.Add(time.Minute)
	if _, err := r.Key(ctx, 4, false); err == nil {
		t.Errorf("key 4 was served from the cache past its TTL")
	}
	keys.Fail = nil

	// Rotation: the new KEK first, the old after; every key still opens.
	sealed := k1.Seal([]byte("x"), nil)
	r2 := newRing(t, keys, privacy.KeyringConfig{}, fresh, old)
	n, err := r2.Rotate(ctx, keys, nil)
	if err != nil || n != 4 {
		t.Fatalf("Rotate = %d, %v; want 4 rewrapped", n, err)
	}
	onlyNew := newRing(t, keys, privacy.KeyringConfig{}, fresh)
	if err := onlyNew.Check(ctx, keys); err != nil {
		t.Fatalf("Check with the new KEK after rotation: %v", err)
	}
	k1b, err := onlyNew.Key(ctx, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := k1b.Open(sealed, nil); err != nil || string(p) != "x" {
		t.Errorf("after rotation room 1 opens %q, %v", p, err)
	}
	onlyOld := newRing(t, keys, privacy.KeyringConfig{}, old)
	if err := onlyOld.Check(ctx, keys); !errors.Is(err, privacy.ErrWrongKEK) && (err == nil || !strings.Contains(err.Error(), "PARLEY_DATA_KEY")) {
		t.Errorf("Check with a KEK that wraps nothing: %v, want a loud error", err)
	}

	// Destroy: gone for good, idempotent, cache evicted.
	if done, err := onlyNew.Destroy(ctx, 1); err != nil || !done {
		t.Fatalf("Destroy = %v, %v", done, err)
	}
	if done, err := onlyNew.Destroy(ctx, 1); err != nil || done {
		t.Fatalf("second Destroy = %v, %v; want false, nil", done, err)
	}
	for _, create := range []bool{false, true} {
		if _, err := onlyNew.Key(ctx, 1, create); !errors.Is(err, privacy.ErrErased) {
			t.Errorf("Key(create %v) of an erased room: %v, want ErrErased", create, err)
		}
	}
}

func created(t *testing.T, id int64) []domain.EventData {
	t.Helper()
	return encode(t, room.RoomCreated{RoomID: id, OwnerID: "u1", Title: "my debts"})
}

func encode(t *testing.T, evs ...room.Event) []domain.EventData {
	t.Helper()
	out := make([]domain.EventData, len(evs))
	for i, e := range evs {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = domain.EventData{ID: uuid(t), Type: e.EventType(), Data: b, Metadata: []byte(`{"user_id":"u1"}`)}
	}
	return out
}

func TestStoreSealsAtRestAndOpens(t *testing.T) {
	ctx := t.Context()
	raw := inmem.New(time.Now)
	chain := audit.NewChainingStore(raw, audit.ChainOptions{TrustTypes: []string{room.TypeAnswerChunk}})
	keys := privacytest.NewMemKeys()
	ring := newRing(t, keys, privacy.KeyringConfig{}, kek(t, 1))
	s := privacy.NewStore(chain, ring)
	const marker = "MARKER-7f3a"
	answer := uuid(t)
	evs := append(created(t, 5), encode(t,
		room.MessagePosted{MessageID: uuid(t), UserID: "u1", Text: "my income is " + marker},
		room.AnswerStarted{AnswerID: answer, QuestionID: uuid(t), Model: "m"},
		room.RetrievalRecorded{AnswerID: answer, Query: marker, Rewrite: &room.QueryRewrite{Model: "m", Queries: []string{marker}}, Retrievers: []room.RetrieverRun{{Kind: "sparse", Query: marker, Hits: []room.RetrievalHit{{ChunkID: "doc1#0", Source: "doc1"}}}}},
		room.AnswerChunk{AnswerID: answer, Seq: 0, Delta: "you said " + marker, Ends: []int{4}, OffsetsMS: []int64{3}},
		room.AnswerCompleted{AnswerID: answer, Text: "you said " + marker, Sources: []room.Source{{Document: "doc1", ChunkID: "doc1#0", Score: 0.5, Snippet: marker, Title: marker}}, Chunks: 1},
		room.SummaryUpdated{Summary: marker, CoversThroughVersion: 5, Summarizer: "x"},
	)...)
	if _, err := s.Append(ctx, room.Stream(5), domain.NoStream(), evs...); err != nil {
		t.Fatal(err)
	}
	stored, err := raw.ReadStream(ctx, room.Stream(5), domain.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range stored {
		if bytes.Contains(ev.Data, []byte(marker)) || bytes.Contains(ev.Data, []byte("my debts")) {
			t.Errorf("stored %s holds plaintext: %s", ev.Type, ev.Data)
		}
	}
	if !bytes.Contains(stored[3].Data, []byte(`"doc1#0"`)) {
		t.Errorf("the retrieval's chunk ids are not in clear: %s", stored[3].Data)
	}
	if res, err := audit.VerifyStream(ctx, raw, room.Stream(5)); err != nil || !res.OK() {
		t.Fatalf("the chain over the sealed bytes does not verify: %+v, %v", res, err)
	}
	read, err := s.ReadStream(ctx, room.Stream(5), domain.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range read {
		if !jsonEqual(ev.Data, evs[i].Data) {
			t.Errorf("%s reads back as %s, want %s", ev.Type, ev.Data, evs[i].Data)
		}
	}
	if !bytes.Equal(read[4].Data, evs[4].Data) {
		t.Errorf("the chunk's data is not in its writer's form (wsapi's fast path): %s", read[4].Data)
	}
	// What the writer keeps opened is what a process that never saw the
	// events opens, byte for byte.
	cold, err := privacy.NewStore(chain, ring).ReadStream(ctx, room.Stream(5), domain.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range read {
		if !bytes.Equal(read[i].Data, cold[i].Data) {
			t.Errorf("%s: the writer reads %s, another process %s", read[i].Type, read[i].Data, cold[i].Data)
		}
	}

	// Erase: the key goes first, then RoomErased; reads show the timeline, no text.
	if _, err := ring.Destroy(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, room.Stream(5), domain.Any(), encode(t, room.RoomErased{RoomID: 5, ErasedBy: "u1", Reason: room.ErasedByOwner})...); err != nil {
		t.Fatal(err)
	}
	after, err := s.ReadStream(ctx, room.Stream(5), domain.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(evs)+1 {
		t.Fatalf("after erasure %d events, want %d", len(after), len(evs)+1)
	}
	for _, ev := range after {
		if bytes.Contains(ev.Data, []byte(marker)) || bytes.Contains(ev.Data, []byte("my debts")) {
			t.Errorf("erased %s still reads %s", ev.Type, ev.Data)
		}
		if _, err := room.Decode(ev, false); err != nil {
			t.Errorf("erased %s does not decode: %v", ev.Type, err)
		}
	}
	if _, err := s.Append(ctx, room.Stream(5), domain.Any(), encode(t, room.MessagePosted{MessageID: uuid(t), UserID: "u1", Text: "again"})...); !errors.Is(err, privacy.ErrErased) {
		t.Errorf("append to an erased room: %v, want ErrErased", err)
	}
	if res, err := audit.VerifyStream(ctx, raw, room.Stream(5)); err != nil || !res.OK() {
		t.Fatalf("the chain does not verify after erasure: %+v, %v", res, err)
	}
}

func uuid(t *testing.T) domain.UUID {
	t.Helper()
	u, err := domain.NewUUID(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && cmp.Equal(x, y)
}

func TestStoreContract(t *testing.T) {
	ring := newRing(t, privacytest.NewMemKeys(), privacy.KeyringConfig{}, kek(t, 1))
	domaintestRun(t, func(*testing.T) domain.EventStore { return privacy.NewStore(inmem.New(time.Now), ring) })
}

func TestStoreAppendChainedShowsClearTextWithTheSealedChain(t *testing.T) {
	ctx := t.Context()
	raw := inmem.New(time.Now)
	chain := audit.NewChainingStore(raw, audit.ChainOptions{})
	s := privacy.NewStore(chain, newRing(t, privacytest.NewMemKeys(), privacy.KeyringConfig{}, kek(t, 1)))
	evs := append(created(t, 3), encode(t, room.MessagePosted{MessageID: uuid(t), UserID: "u1", Text: "secret words"})...)
	_, shown, err := s.AppendChained(ctx, room.Stream(3), domain.NoStream(), evs...)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := raw.ReadStream(ctx, room.Stream(3), domain.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		if !bytes.Equal(shown[i].Data, evs[i].Data) {
			t.Errorf("event %d shown as %s, want the clear %s", i, shown[i].Data, evs[i].Data)
		}
		if got, want := domain.ChainHash(shown[i].Metadata), domain.ChainHash(stored[i].Metadata); got == "" || got != want {
			t.Errorf("event %d shown with hash %q, stored with %q", i, got, want)
		}
	}
}

// A process keeps the events it wrote or opened opened (no decryption on
// every read), but never past their key: once the key is gone from the
// key store, whoever destroyed it, the text is no longer served, and a
// room's RoomErased drops what it holds.
func TestOpenedEventsGoWithTheKey(t *testing.T) {
	ctx := t.Context()
	raw := inmem.New(time.Now)
	keys := privacytest.NewMemKeys()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	writer := privacy.NewStore(raw, newRing(t, keys, privacy.KeyringConfig{CacheTTL: time.Minute, Now: clock}, kek(t, 1)))
	other := newRing(t, keys, privacy.KeyringConfig{}, kek(t, 1)) // another replica
	const marker = "MARKER-c4c4"
	answer := uuid(t)
	evs := append(created(t, 8), encode(t,
		room.MessagePosted{MessageID: uuid(t), UserID: "u1", Text: marker},
		room.AnswerChunk{AnswerID: answer, Seq: 0, Delta: marker},
	)...)
	if _, err := writer.Append(ctx, room.Stream(8), domain.NoStream(), evs...); err != nil {
		t.Fatal(err)
	}
	texts := func() string {
		t.Helper()
		read, err := writer.ReadStream(ctx, room.Stream(8), domain.ReadStreamOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, ev := range read {
			b.Write(ev.Data)
		}
		return b.String()
	}
	if got := texts(); strings.Count(got, marker) != 2 {
		t.Fatalf("before erasure the writer reads %s", got)
	}
	if _, err := other.Destroy(ctx, 8); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute) // past the writer's key cache TTL
	if got := texts(); strings.Contains(got, marker) {
		t.Errorf("after the key was destroyed elsewhere the writer still reads %s", got)
	}
}
