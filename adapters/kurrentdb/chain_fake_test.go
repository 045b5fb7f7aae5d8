package kurrentdb

import (
	"encoding/json"
	"testing"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/audit"
	"github.com/parleychat/parley/domain/domaintest"
)

// TestChainingStoreContractFakeServer runs the contract over the audit
// chain store in front of the store, over the real client and fakeServer.
func TestChainingStoreContractFakeServer(t *testing.T) {
	_, url := startFakeServer(t, DefaultMaxAppendSize)
	s := audit.NewChainingStore(fakeStoreOver(t, url, Options{}), audit.ChainOptions{})
	domaintest.RunEventStoreTests(t, func(t *testing.T) domain.EventStore { return s })
}

// TestChainSurvivesTheClient: data and metadata cross the client and back
// as the same bytes, so the chain verifies from what the store reads.
func TestChainSurvivesTheClient(t *testing.T) {
	_, url := startFakeServer(t, DefaultMaxAppendSize)
	k := fakeStoreOver(t, url, Options{})
	s := audit.NewChainingStore(k, audit.ChainOptions{})
	odd := []string{`{"b":1,"a":2}`, `{ "a" :  [1, 2,3] }`, `{"n":1.0,"m":1e2}`, `{"s":"caf\u00e9 😀"}`, `[1,"two"]`}
	metas := []string{``, `{}`, ` {"user_id":"7"} `}
	for i, d := range odd {
		ev := domain.EventData{ID: domaintest.NewID(t), Type: "Odd", Data: json.RawMessage(d), Metadata: json.RawMessage(metas[i%len(metas)])}
		if _, err := s.Append(t.Context(), "room-1", domain.Exact(int64(i)-1), ev); err != nil {
			t.Fatalf("append %s: %v", d, err)
		}
	}
	res, err := audit.VerifyStream(t.Context(), k, "room-1")
	if err != nil || !res.OK() || res.Events != len(odd) {
		t.Errorf("VerifyStream = %+v, %v; want %d events and no break", res, err, len(odd))
	}
}
