package kurrentdb

import (
	"strings"
	"sync"
	"testing"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

// TestLogIDNamesTheLog: every store over one server names the same log,
// even when they ask first at the same moment; another server is another
// log; and the name's stream is no room's.
func TestLogIDNamesTheLog(t *testing.T) {
	_, url := startFakeServer(t, 2*mib)
	stores := []*Store{fakeStoreOver(t, url, Options{}), fakeStoreOver(t, url, Options{}), fakeStoreOver(t, url, Options{})}
	ids := make([]string, len(stores))
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() {
			id, err := s.LogID(t.Context())
			if err != nil {
				t.Errorf("LogID: %v", err)
			}
			ids[i] = id
		})
	}
	wg.Wait()
	if !strings.HasPrefix(ids[0], "kurrentdb:") || len(ids[0]) != len("kurrentdb:")+36 || ids[1] != ids[0] || ids[2] != ids[0] {
		t.Errorf("LogID over one server = %q, want one kurrentdb:<uuid>", ids)
	}
	if again, err := stores[0].LogID(t.Context()); err != nil || again != ids[0] {
		t.Errorf("LogID again = %q, %v; want %q", again, err, ids[0])
	}
	if evs, err := stores[0].ReadStream(t.Context(), LogStream, domain.ReadStreamOptions{}); err != nil || len(evs) != 1 {
		t.Errorf("%s holds %d events (%v), want the one naming the log", LogStream, len(evs), err)
	}
	if strings.HasPrefix(LogStream, room.StreamPrefix) {
		t.Errorf("the log's name is kept in %s, a room's stream", LogStream)
	}

	_, other := startFakeServer(t, 2*mib)
	if id, err := fakeStoreOver(t, other, Options{}).LogID(t.Context()); err != nil || id == ids[0] {
		t.Errorf("LogID of another server = %q, %v; want another log", id, err)
	}
}
