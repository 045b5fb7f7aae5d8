package kurrentdb_test

import (
	"encoding/json"
	"testing"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/audit"
	"github.com/parleychat/parley/domain/domaintest"
)

// TestChainingStoreContract runs the event store contract over the audit
// chain store in front of KurrentDB (see TestContract for the server's
// settings).
func TestChainingStoreContract(t *testing.T) {
	s := audit.NewChainingStore(dialOrSkip(t), audit.ChainOptions{})
	domaintest.RunEventStoreTests(t, func(t *testing.T) domain.EventStore { return s })
}

// TestChainSurvivesKurrentDB: KurrentDB returns data and metadata as the
// bytes written, so a chain verifies from what it reads back.
func TestChainSurvivesKurrentDB(t *testing.T) {
	k := dialOrSkip(t)
	s := audit.NewChainingStore(k, audit.ChainOptions{})
	stream := domaintest.UniquePrefix(t) + "room-1"
	odd := []string{`{"b":1,"a":2}`, `{ "a" :  [1, 2,3] }`, `{"n":1.0,"m":1e2}`, `{"s":"caf\u00e9 😀"}`, `[1,"two"]`}
	metas := []string{``, `{}`, ` {"user_id":"7"} `}
	for i, d := range odd {
		ev := domain.EventData{ID: domaintest.NewID(t), Type: "Odd", Data: json.RawMessage(d), Metadata: json.RawMessage(metas[i%len(metas)])}
		if _, err := s.Append(t.Context(), stream, domain.Exact(int64(i)-1), ev); err != nil {
			t.Fatalf("append %s: %v", d, err)
		}
	}
	res, err := audit.VerifyStream(t.Context(), k, stream)
	if err != nil || !res.OK() || res.Events != len(odd) {
		t.Errorf("VerifyStream = %+v, %v; want %d events and no break", res, err, len(odd))
	}
}
