package privacy

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"

	"github.com/parleychat/parley/domain/jsonform"
)

// EnvelopeVersion is the version of the envelope format this package writes
// and reads: AES-256-GCM with a 96-bit nonce.
const EnvelopeVersion = 1

// KeySize is the size of data keys and KEKs: 256 bits.
const KeySize = 32

const nonceSize = 12

// Envelope is sealed content as it is stored. Enc is the format version,
// Kid the id of the room key that sealed it, N the nonce and CT the
// ciphertext with its tag (both base64 in JSON).
type Envelope struct {
	Enc int    `json:"enc"`
	Kid string `json:"kid"`
	N   []byte `json:"n"`
	CT  []byte `json:"ct"`
}

// ErrOpen is wrapped by the errors of opening an envelope that does not
// authenticate under its key (tampered, or sealed under another key).
var ErrOpen = errors.New("the envelope does not authenticate under the room's key")

// Key is a room's unwrapped data key. It seals deterministically: the nonce
// is an HMAC of the associated data and the plaintext under a key derived
// from the data key (a synthetic nonce), so sealing the same event twice (a
// retried append) stores the same bytes, and two different plaintexts get
// different nonces.
type Key struct {
	Room  int64
	ID    string
	aead  cipher.AEAD
	nonce sync.Pool // of hash.Hash: HMAC-SHA256 keyed with the nonce key
}

// NewKey returns the key of room with id kid and secret (KeySize bytes).
func NewKey(room int64, kid string, secret []byte) (*Key, error) {
	if len(secret) != KeySize {
		return nil, fmt.Errorf("room %d's data key is %d bytes, want %d", room, len(secret), KeySize)
	}
	aead, err := newGCM(secret)
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("parley nonce key"))
	nonceKey := m.Sum(nil)
	k := &Key{Room: room, ID: kid, aead: aead}
	k.nonce.New = func() any { return hmac.New(sha256.New, nonceKey) }
	return k, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	return cipher.NewGCM(block)
}

// Seal seals plaintext bound to ad (associated data: what the content
// belongs to, so it cannot be moved elsewhere).
func (k *Key) Seal(plaintext, ad []byte) Envelope {
	m := k.nonce.Get().(hash.Hash)
	m.Reset()
	m.Write([]byte(strconv.Itoa(len(ad))))
	m.Write([]byte{':'})
	m.Write(ad)
	m.Write(plaintext)
	var sum [sha256.Size]byte
	n := m.Sum(sum[:0])[:nonceSize]
	k.nonce.Put(m)
	return Envelope{Enc: EnvelopeVersion, Kid: k.ID, N: n, CT: k.aead.Seal(nil, n, plaintext, ad)}
}

// Open returns the plaintext of e, which must have been sealed by k with ad.
func (k *Key) Open(e Envelope, ad []byte) ([]byte, error) {
	switch {
	case e.Enc != EnvelopeVersion:
		return nil, fmt.Errorf("room %d: envelope version %d, this build reads %d", k.Room, e.Enc, EnvelopeVersion)
	case e.Kid != k.ID:
		return nil, fmt.Errorf("room %d: envelope sealed under key %q, the room's key is %q: %w", k.Room, e.Kid, k.ID, ErrOpen)
	case len(e.N) != nonceSize:
		return nil, fmt.Errorf("room %d: envelope nonce is %d bytes, want %d: %w", k.Room, len(e.N), nonceSize, ErrOpen)
	}
	p, err := k.aead.Open(nil, e.N, e.CT, ad)
	if err != nil {
		return nil, fmt.Errorf("room %d, key %q: %w", k.Room, k.ID, ErrOpen)
	}
	return p, nil
}

// SealText seals text into the JSON of its envelope, for a read model's
// column.
func (k *Key) SealText(text string, ad []byte) string {
	return string(k.Seal([]byte(text), ad).appendJSON(nil))
}

// appendJSON appends what json.Marshal writes for e, without its
// reflection: every sealed event and text writes one.
func (e Envelope) appendJSON(b []byte) []byte {
	if e.N == nil || e.CT == nil { // nil is null; Seal never makes one
		j, _ := json.Marshal(e) // an Envelope always marshals
		return append(b, j...)
	}
	b = append(b, `{"enc":`...)
	b = strconv.AppendInt(b, int64(e.Enc), 10)
	b = append(b, `,"kid":`...)
	b = jsonform.AppendString(b, e.Kid)
	b = append(b, `,"n":"`...)
	b = base64.StdEncoding.AppendEncode(b, e.N)
	b = append(b, `","ct":"`...)
	b = base64.StdEncoding.AppendEncode(b, e.CT)
	return append(b, `"}`...)
}

// ParseEnvelope reads s as an envelope's JSON; ok is false when s is not
// one (text stored before encryption).
func ParseEnvelope(s string) (Envelope, bool) {
	if len(s) < 10 || s[0] != '{' {
		return Envelope{}, false
	}
	if e, ok := parseEnvelopeFast(s); ok {
		return e, true
	}
	var e Envelope
	if err := json.Unmarshal([]byte(s), &e); err != nil || e.Enc == 0 || e.Kid == "" {
		return Envelope{}, false
	}
	return e, true
}

// parseEnvelopeFast reads s when it is exactly what SealText writes
// (`{"enc":N,"kid":"…","n":"…","ct":"…"}`, in Marshal's form): a read model opens
// one per text it shows, and encoding/json costs several times the
// decryption. Anything else is ParseEnvelope's to read.
func parseEnvelopeFast(s string) (Envelope, bool) {
	var e Envelope
	rest, ok := strings.CutPrefix(s, `{"enc":`)
	if !ok {
		return e, false
	}
	enc, i, ok := jsonform.Int(rest)
	if !ok || enc <= 0 || int64(int(enc)) != enc {
		return e, false
	}
	var kid, n, ct string
	if kid, rest, ok = quoted(rest[i:], `,"kid":`); !ok {
		return e, false
	}
	if n, rest, ok = quoted(rest, `,"n":`); !ok {
		return e, false
	}
	if ct, rest, ok = quoted(rest, `,"ct":`); !ok || rest != "}" || kid == "" {
		return e, false
	}
	e = Envelope{Enc: int(enc), Kid: kid}
	var err error
	if e.N, err = base64.StdEncoding.DecodeString(n); err != nil {
		return Envelope{}, false
	}
	if e.CT, err = base64.StdEncoding.DecodeString(ct); err != nil {
		return Envelope{}, false
	}
	return e, true
}

// quoted reads prefix and then a JSON string in Marshal's form from s.
func quoted(s, prefix string) (val, rest string, ok bool) {
	if s, ok = strings.CutPrefix(s, prefix); !ok {
		return "", "", false
	}
	val, n, ok := jsonform.String(s)
	if !ok {
		return "", "", false
	}
	return val, s[n:], true
}
