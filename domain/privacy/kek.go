package privacy

import (
	"crypto/cipher"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// KEK is a key-encryption key: it wraps rooms' data keys. ID is a
// fingerprint that names it in the key table without revealing it.
type KEK struct {
	ID   string
	aead cipher.AEAD
}

// ParseKEK reads a KEK written as 64 hex digits or as the standard base64
// of 32 bytes. Errors never repeat the text.
func ParseKEK(s string) (KEK, error) {
	s = strings.TrimSpace(s)
	var raw []byte
	if b, err := hex.DecodeString(s); err == nil && len(b) == KeySize {
		raw = b
	} else if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) == KeySize {
		raw = b
	} else {
		return KEK{}, fmt.Errorf("a data key must be %d random bytes written as 64 hex digits or in base64 (e.g. `openssl rand -base64 32`); this one is %d characters that decode to neither", KeySize, len(s))
	}
	return NewKEK(raw)
}

// NewKEK returns the KEK of raw (KeySize bytes).
func NewKEK(raw []byte) (KEK, error) {
	if len(raw) != KeySize {
		return KEK{}, fmt.Errorf("a data key must be %d bytes, not %d", KeySize, len(raw))
	}
	aead, err := newGCM(raw)
	if err != nil {
		return KEK{}, err
	}
	sum := sha256.Sum256(append([]byte("parley kek id\x00"), raw...))
	return KEK{ID: hex.EncodeToString(sum[:8]), aead: aead}, nil
}

// KEKs are the configured KEKs: the first wraps new keys and rewraps old
// ones on rotation; each unwraps the keys it wrapped.
type KEKs []KEK

// ErrWrongKEK is wrapped by the error of a key no configured KEK unwraps.
var ErrWrongKEK = errors.New("no configured data key (PARLEY_DATA_KEY) unwraps it")

func wrapAD(room int64, kid string) []byte {
	return []byte("parley room key " + strconv.FormatInt(room, 10) + " " + kid)
}

// Wrap wraps room's data key secret (id kid) under the first KEK, with a
// random nonce from rnd, and returns that KEK's ID and nonce||ciphertext.
func (ks KEKs) Wrap(rnd io.Reader, room int64, kid string, secret []byte) (string, []byte, error) {
	if len(ks) == 0 {
		return "", nil, errors.New("no data key is configured (PARLEY_DATA_KEY)")
	}
	n := make([]byte, nonceSize)
	if _, err := io.ReadFull(rnd, n); err != nil {
		return "", nil, fmt.Errorf("wrap room %d's key: random nonce: %w", room, err)
	}
	return ks[0].ID, ks[0].aead.Seal(n, n, secret, wrapAD(room, kid)), nil
}

// Unwrap returns the data key of room wrapped under the KEK with ID kekID.
func (ks KEKs) Unwrap(room int64, kid, kekID string, wrapped []byte) ([]byte, error) {
	if len(wrapped) < nonceSize {
		return nil, fmt.Errorf("room %d's wrapped key is %d bytes, too short", room, len(wrapped))
	}
	for _, k := range ks {
		if k.ID != kekID {
			continue
		}
		p, err := k.aead.Open(nil, wrapped[:nonceSize], wrapped[nonceSize:], wrapAD(room, kid))
		if err != nil {
			return nil, fmt.Errorf("room %d's key does not unwrap under data key %s (tampered?): %w", room, kekID, ErrWrongKEK)
		}
		return p, nil
	}
	return nil, fmt.Errorf("room %d's key is wrapped under data key %s, which is not configured (configured: %s): %w", room, kekID, ks.ids(), ErrWrongKEK)
}

// Has reports whether a KEK with this ID is configured.
func (ks KEKs) Has(id string) bool {
	for _, k := range ks {
		if k.ID == id {
			return true
		}
	}
	return false
}

func (ks KEKs) ids() string {
	ids := make([]string, len(ks))
	for i, k := range ks {
		ids[i] = k.ID
	}
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ", ")
}
