package postgres_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/audit"
	"github.com/parleychat/parley/domain/domaintest"
)

// TestChainingStoreContract runs the event store contract over the audit
// chain store in front of Postgres.
func TestChainingStoreContract(t *testing.T) {
	domaintest.RunEventStoreTests(t, func(t *testing.T) domain.EventStore {
		return audit.NewChainingStore(newStore(t), audit.ChainOptions{})
	})
}

// TestChainSurvivesPostgres: data and metadata read back byte for byte (the
// columns are json, not jsonb), so chains written through the chain store
// verify from what Postgres returns, whatever the JSON looks like.
func TestChainSurvivesPostgres(t *testing.T) {
	pg := newStore(t)
	s := audit.NewChainingStore(pg, audit.ChainOptions{})
	odd := []string{
		`{"b":1,"a":2}`,                                   // key order jsonb would sort
		`{ "a" :  [1, 2,3] ,"b":{"c":null} }`,             // insignificant white space
		`{"a":1,"a":2}`,                                   // duplicate keys jsonb would drop
		`{"n":1.0,"m":1e2,"big":12345678901234567890123}`, // numbers as written
		`{"s":"caf\u00e9 \ud83d\ude00 \"q\" \\ /"}`,       // escapes
		`{"s":"café 😀"}`,                                  // raw UTF-8
		`[1,"two",{"three":3}]`,
		`"just a string"`,
		`null`,
	}
	metas := []string{``, `null`, `{}`, ` {"user_id":"7", "occurred_at":"2026-01-02T03:04:05Z"} `}
	var sent []domain.EventData
	for i, d := range odd {
		ev := domain.EventData{ID: domaintest.NewID(t), Type: "Odd", Data: json.RawMessage(d), Metadata: json.RawMessage(metas[i%len(metas)])}
		if _, err := s.Append(t.Context(), "room-1", domain.Exact(int64(i)-1), ev); err != nil {
			t.Fatalf("append %s: %v", d, err)
		}
		sent = append(sent, ev)
	}
	evs, err := pg.ReadStream(t.Context(), "room-1", domain.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range evs {
		if string(ev.Data) != string(sent[i].Data) {
			t.Errorf("event %d data read back as %s, sent %s", i, ev.Data, sent[i].Data)
		}
	}
	res, err := audit.VerifyStream(t.Context(), pg, "room-1")
	if err != nil || !res.OK() || res.Events != len(odd) {
		t.Errorf("VerifyStream = %+v, %v; want %d events and no break", res, err, len(odd))
	}
}

func TestStreams(t *testing.T) {
	s := newStore(t)
	names := []string{"room-10", "room-2", "room-1", "other-1", "roomy", "room-"}
	for _, n := range names {
		if _, err := s.Append(t.Context(), n, domain.NoStream(), domaintest.Events(t, "E", 3)...); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Streams(t.Context(), "room-")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []string{"room-", "room-1", "room-10", "room-2"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Streams(room-) = %v, want %v", got, want)
	}
	all, err := s.Streams(t.Context(), "")
	if err != nil || len(all) != len(names) {
		t.Errorf("Streams() = %v, %v; want all %d", all, err, len(names))
	}
	empty := newStore(t)
	if got, err := empty.Streams(t.Context(), ""); err != nil || len(got) != 0 {
		t.Errorf("Streams of an empty store = %v, %v", got, err)
	}
}

// BenchmarkChainingAppend measures what the chain store adds to an
// answer's appends: batches of 4 chunk events at exact versions, one
// stream per 100 batches, each append after the previous one without a
// read in between (the answer pipeline's pattern, which misses the hash
// cache and reads the previous event). Its baseline is the same appends
// to the store directly, in the same run:
//
//	go test -run '^$' -bench ChainingAppend -count 3 ./adapters/postgres/
func BenchmarkChainingAppend(b *testing.B) {
	pg := postgres.NewStore(pgtest.NewPool(b, 10), postgres.StoreConfig{})
	b.Cleanup(func() { pg.Close() })
	took := map[string][]time.Duration{} // every append's time, over all -count runs
	for _, tc := range []struct {
		name  string
		store domain.EventStore
	}{
		{"direct", pg},
		{"chained", audit.NewChainingStore(pg, audit.ChainOptions{})},
	} {
		b.Run(tc.name, func(b *testing.B) {
			prefix := domaintest.UniquePrefix(b)
			i := 0
			for b.Loop() {
				stream := fmt.Sprintf("%sroom-%d", prefix, i/100)
				evs := domaintest.Events(b, "AnswerChunk", 4)
				t0 := time.Now()
				if _, err := tc.store.Append(b.Context(), stream, domain.Exact(int64(i%100)*4-1), evs...); err != nil {
					b.Fatal(err)
				}
				took[tc.name] = append(took[tc.name], time.Since(t0))
				i++
			}
		})
	}
	median := func(ds []time.Duration) time.Duration {
		if len(ds) == 0 {
			return 0
		}
		ds = slices.Clone(ds)
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	if d, c := median(took["direct"]), median(took["chained"]); d > 0 && c > 0 {
		fmt.Printf("append of 4 events: median direct %s, chained %s, ratio %.2f\n", d, c, float64(c)/float64(d))
	}
}
