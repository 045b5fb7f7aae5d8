package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/parleychat/parley/domain/privacy"
	"github.com/parleychat/parley/domain/room"
)

// RoomKeys gives out rooms' data keys (privacy.Keyring).
type RoomKeys interface {
	Key(ctx context.Context, room int64, create bool) (*privacy.Key, error)
}

func chatLogAD(roomID int64, what string) []byte {
	return []byte("chatlog/" + strconv.FormatInt(roomID, 10) + "/" + what)
}

// sealFold seals, under each room's data key, the text a batch writes:
// rooms' titles, messages' text, and their sources' titles and snippets
// (their documents, chunks and scores stay in clear). A room whose key was
// destroyed gets empty text. Without keys it changes nothing.
func (c *ChatLog) sealFold(ctx context.Context, f *batchFold) error {
	if c.keys == nil {
		return nil
	}
	keys := map[int64]*privacy.Key{}
	key := func(id int64) (*privacy.Key, error) {
		if k, ok := keys[id]; ok {
			return k, nil
		}
		k, err := c.keys.Key(ctx, id, true)
		if errors.Is(err, privacy.ErrErased) {
			err = nil
		}
		if err != nil {
			return nil, fmt.Errorf("seal room %d's chat log: %w", id, err)
		}
		keys[id] = k
		return k, nil
	}
	seal := func(id int64, text, what string) (string, error) {
		if text == "" {
			return "", nil
		}
		k, err := key(id)
		if err != nil || k == nil {
			return "", err
		}
		return k.SealText(text, chatLogAD(id, what)), nil
	}
	var err error
	for _, rf := range f.rooms {
		if rf.created != nil {
			if rf.created.Title, err = seal(rf.id, rf.created.Title, "title"); err != nil {
				return err
			}
		}
	}
	for _, m := range f.msgs {
		if len(m.text) > 0 {
			s, err := seal(m.room, string(m.text), m.id.String()+"/text")
			if err != nil {
				return err
			}
			m.text = []byte(s)
		}
		if m.sources != nil {
			sealed := make([]room.Source, len(m.sources))
			for i, src := range m.sources {
				if src.Title, err = seal(m.room, src.Title, m.id.String()+"/source-title"); err != nil {
					return err
				}
				if src.Snippet, err = seal(m.room, src.Snippet, m.id.String()+"/source-snippet"); err != nil {
					return err
				}
				sealed[i] = src
			}
			m.sources = sealed
		}
	}
	return nil
}

// opener opens what sealFold sealed, a room at a time; text stored before
// sealing is read as it is, and a room whose key was destroyed reads as
// empty.
type opener struct {
	c    *ChatLog
	ctx  context.Context
	room int64
	key  *privacy.Key
	gone bool
}

func (c *ChatLog) opener(ctx context.Context, roomID int64) *opener {
	return &opener{c: c, ctx: ctx, room: roomID}
}

func (o *opener) open(s, what string) (string, error) {
	env, ok := privacy.ParseEnvelope(s)
	if !ok || o.c.keys == nil {
		return s, nil
	}
	if o.key == nil && !o.gone {
		k, err := o.c.keys.Key(o.ctx, o.room, false)
		switch {
		case errors.Is(err, privacy.ErrErased), errors.Is(err, privacy.ErrNoKey):
			o.gone = true
		case err != nil:
			return "", fmt.Errorf("open room %d's chat log: %w", o.room, err)
		}
		o.key = k
	}
	if o.gone {
		return "", nil
	}
	p, err := o.key.Open(env, chatLogAD(o.room, what))
	if err != nil {
		return "", fmt.Errorf("open room %d's chat log: %w", o.room, err)
	}
	return string(p), nil
}

// message opens a message read from the chat log.
func (o *opener) message(m *room.Message) error {
	var err error
	if m.Text, err = o.open(m.Text, m.ID.String()+"/text"); err != nil {
		return err
	}
	for i := range m.Sources {
		s := &m.Sources[i]
		if s.Title, err = o.open(s.Title, m.ID.String()+"/source-title"); err != nil {
			return err
		}
		if s.Snippet, err = o.open(s.Snippet, m.ID.String()+"/source-snippet"); err != nil {
			return err
		}
	}
	return nil
}

// openRoom opens a room row's title.
func (c *ChatLog) openRoom(ctx context.Context, r *RoomRow) error {
	t, err := c.opener(ctx, r.ID).open(r.Title, "title")
	r.Title = t
	return err
}
