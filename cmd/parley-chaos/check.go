package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

// truth is a room as its log tells it, read straight from PostgreSQL.
type truth struct {
	version   int64
	history   *room.History
	open      bool           // an answer has started and not ended
	clientIDs map[string]int // MessagePosted per client id
	hashes    map[int64]string
}

func (c *cluster) truth(ctx context.Context, id int64) (*truth, error) {
	t := &truth{version: domain.NoVersion, history: room.NewHistory(), clientIDs: map[string]int{}, hashes: map[int64]string{}}
	st := room.NewState()
	for ev, err := range domain.StreamEvents(ctx, c.log, room.Stream(id), domain.ReadStreamOptions{Limit: 1000}) {
		if errors.Is(err, domain.ErrStreamNotFound) {
			return t, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read room %d: %w", id, err)
		}
		if err := st.Evolve(ev); err != nil {
			return nil, fmt.Errorf("room %d: %w", id, err)
		}
		if err := t.history.Apply(ev); err != nil {
			return nil, fmt.Errorf("room %d: %w", id, err)
		}
		t.version, t.hashes[ev.Version] = ev.Version, domain.ChainHash(ev.Metadata)
		if ev.Type == room.TypeMessagePosted {
			p, err := room.Decode(ev, false)
			if err != nil {
				return nil, err
			}
			if cid := p.(room.MessagePosted).ClientID; cid != "" {
				t.clientIDs[cid]++
			}
		}
	}
	t.open = st.Open != nil
	return t, nil
}

// messages returns the log's conversation as a client should hold it.
func (t *truth) messages() []message {
	out := make([]message, len(t.history.Messages))
	for i, m := range t.history.Messages {
		out[i] = message{ID: m.ID.String(), Role: m.Role, Text: m.Text, Status: m.Status}
	}
	return out
}

// sameConversation reports whether a client's messages are the log's.
func sameConversation(got, want []message) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// firstDifference describes where a client's messages first differ from
// the log's.
func firstDifference(got, want []message) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("message %d: the client has %+v, the log %+v", i, got[i], want[i])
		}
	}
	return fmt.Sprintf("the client has %d messages, the log %d", len(got), len(want))
}
