package privacy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

// errNotObject is sealEvent's error for data that is not a JSON object.
var errNotObject = errors.New("the data is not a JSON object")

// eventAD is the associated data an event's envelope is bound to: the
// stream, id and type of its event, so it cannot be moved to another.
func eventAD(stream string, id domain.UUID, typ string) []byte {
	return []byte(stream + "/" + id.String() + "/" + typ)
}

// sealEvent returns the data of an event of type typ with its secret
// fields (room.SecretFields) sealed under key() for ad; changed is false
// when it has nothing to seal. key is called only when there is. exact
// says that opening out gives data back byte for byte (it is in the
// codec's form).
func sealEvent(typ string, data []byte, key func() (*Key, error), ad []byte) (out []byte, changed, exact bool, err error) {
	if typ == room.TypeAnswerChunk {
		out, ok, err := sealChunk(data, key, ad)
		if ok || err != nil {
			return out, ok, ok, err
		}
	}
	out, changed, err = sealGeneric(typ, data, key, ad)
	return out, changed, changed && err == nil && inCodecForm(typ, data), err
}

// inCodecForm reports whether data is what the codec writes for its
// payload: openGeneric, which re-encodes through the codec, then returns
// it byte for byte.
func inCodecForm(typ string, data []byte) bool {
	p, err := room.Decode(domain.RecordedEvent{Type: typ, Data: data}, false)
	if err != nil {
		return false
	}
	_, again, err := room.Encode(p)
	return err == nil && bytes.Equal(again, data)
}

// sealGeneric is sealEvent for any type, through a map of the data.
func sealGeneric(typ string, data []byte, key func() (*Key, error), ad []byte) (out []byte, changed bool, err error) {
	obj, err := decodeObject(data)
	if err != nil {
		return nil, false, errNotObject
	}
	secrets := extract(obj, room.SecretFields(typ))
	if len(secrets) == 0 {
		return data, false, nil
	}
	k, err := key()
	if err != nil {
		return nil, false, err
	}
	plain, err := json.Marshal(secrets)
	if err != nil {
		return nil, false, err
	}
	obj[sealedKey] = k.Seal(plain, ad)
	if out, err = json.Marshal(obj); err != nil {
		return nil, false, err
	}
	return out, true, nil
}

// openEvent returns the data of the sealed event ev with its secrets
// restored, in the form the codec writes it, or with its clear fields
// only when key is nil (the room is erased).
func openEvent(ev domain.RecordedEvent, key *Key) ([]byte, error) {
	if ev.Type == room.TypeAnswerChunk {
		out, ok, err := openChunk(ev.Data, key, eventAD(ev.Stream, ev.ID, ev.Type))
		if ok || err != nil {
			return out, err
		}
	}
	return openGeneric(ev, key)
}

// openGeneric is openEvent for any type, through a map of the data.
func openGeneric(ev domain.RecordedEvent, key *Key) ([]byte, error) {
	obj, err := decodeObject(ev.Data)
	if err != nil {
		return nil, err
	}
	raw, _ := json.Marshal(obj[sealedKey])
	delete(obj, sealedKey)
	if key != nil {
		var env Envelope
		if err := json.Unmarshal(raw, &env); err != nil {
			return nil, fmt.Errorf("its envelope: %w", err)
		}
		plain, err := key.Open(env, eventAD(ev.Stream, ev.ID, ev.Type))
		if err != nil {
			return nil, err
		}
		secrets, err := decodeObject(plain)
		if err != nil {
			return nil, fmt.Errorf("its sealed fields: %w", err)
		}
		restore(obj, secrets)
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	// Re-encode through the codec, so the data has the form its writer
	// gave it (field order included: wsapi writes chunk frames straight
	// from it). Data that does not decode is the reader's to report, as it
	// would be unsealed: it gets it as it is.
	ev.Data = b
	p, err := room.Decode(ev, false)
	if err != nil {
		return b, nil
	}
	_, data, err := room.Encode(p)
	if err != nil {
		return b, nil
	}
	return data, nil
}
