package httpapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

// StreamingMessages is a MessagePager over a read model (Base, such as
// the ChatLog) that holds an answer still streaming as its opening row,
// without the text its chunks carry: it reads those chunks from the room's
// stream (Stream), as connect-time history does, so a page shows the
// partial text — and, when the answer has ended meanwhile, its end.
type StreamingMessages struct {
	Base   MessagePager
	Stream domain.StreamReader
}

// Messages implements MessagePager.
func (s StreamingMessages) Messages(ctx context.Context, roomID, before int64, limit int) ([]room.Message, error) {
	msgs, err := s.Base.Messages(ctx, roomID, before, limit)
	if err != nil {
		return nil, err
	}
	for i, m := range msgs {
		if m.Status != room.StatusStreaming {
			continue
		}
		if msgs[i], err = s.follow(ctx, roomID, m, before); err != nil {
			return nil, err
		}
	}
	return msgs, nil
}

// follow folds into m the room's events after its version and before
// before.
func (s StreamingMessages) follow(ctx context.Context, roomID int64, m room.Message, before int64) (room.Message, error) {
	h := room.NewHistory()
	h.Load([]room.Message{m}, m.Version)
	for ev, err := range domain.StreamEvents(ctx, s.Stream, room.Stream(roomID), domain.ReadStreamOptions{From: h.Version + 1, Limit: 1000}) {
		if errors.Is(err, domain.ErrStreamNotFound) {
			break
		}
		if err != nil {
			return m, fmt.Errorf("read the streaming answer of room %d: %w", roomID, err)
		}
		if ev.Version >= before {
			break
		}
		if err := h.Apply(ev); err != nil {
			return m, fmt.Errorf("read the streaming answer of room %d: %w", roomID, err)
		}
	}
	return h.Messages[0], nil
}
