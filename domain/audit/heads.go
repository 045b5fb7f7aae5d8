package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/parleychat/parley/domain/room"
)

// Signed chain heads.
//
// A heads file records the chain heads of rooms at one moment, so that a
// later verification can check that each is still on its room's chain:
// that catches a rewrite of a whole chain, or a deleted tail, which a
// chain that verifies on its own cannot show. Kept away from the
// database's operators and signed with an Ed25519 key they do not hold,
// it cannot be rewritten along with the chains.
//
// The file is JSON:
//
//	{"format": "parley-audit-heads/1", "exported_at": RFC 3339,
//	 "heads": [{"room", "stream", "version", "hash", "exported_at"}, ...],
//	 "signature": {"algorithm": "ed25519", "key_id", "value"}}
//
// The signature (base64) covers HeadsFormat and a newline, followed by
// the file without its signature as encoding/json writes it compactly
// (SignedBytes). A key is named by KeyID: the first 16 hex digits of the
// SHA-256 of its public key. Keys are stored as PEM: PKCS #8 "PRIVATE
// KEY" and PKIX "PUBLIC KEY" blocks.

// HeadsFormat names the heads file format and starts the signed bytes.
const HeadsFormat = "parley-audit-heads/1"

// SignatureAlgorithm is the only algorithm heads files are signed with.
const SignatureAlgorithm = "ed25519"

// Heads is a heads file.
type Heads struct {
	Format     string     `json:"format"`
	ExportedAt string     `json:"exported_at"`
	Heads      []RoomHead `json:"heads"`
	Signature  *Signature `json:"signature,omitempty"`
}

// RoomHead is one room's exported chain head.
type RoomHead struct {
	Room       int64  `json:"room"`
	Stream     string `json:"stream"`
	Version    int64  `json:"version"`
	Hash       string `json:"hash"`
	ExportedAt string `json:"exported_at"`
}

// Signature is an Ed25519 signature over SignedBytes.
type Signature struct {
	Algorithm string `json:"algorithm"`
	KeyID     string `json:"key_id"`
	Value     string `json:"value"`
}

// NewHeads returns an empty, unsigned heads file exported at at.
func NewHeads(at time.Time) *Heads {
	return &Heads{Format: HeadsFormat, ExportedAt: at.UTC().Format(time.RFC3339Nano), Heads: []RoomHead{}}
}

// Add records room's head, as VerifyStream found it.
func (h *Heads) Add(roomID int64, head Head) {
	h.Heads = append(h.Heads, RoomHead{Room: roomID, Stream: room.Stream(roomID), Version: head.Version, Hash: head.Hash, ExportedAt: h.ExportedAt})
}

// Anchors returns the heads by room, as VerifyStream takes them.
func (h *Heads) Anchors() map[int64][]Head {
	out := make(map[int64][]Head)
	for _, rh := range h.Heads {
		out[rh.Room] = append(out[rh.Room], Head{Version: rh.Version, Hash: rh.Hash})
	}
	return out
}

// SignedBytes is what a heads file's signature covers.
func (h *Heads) SignedBytes() ([]byte, error) {
	doc := *h
	doc.Signature = nil
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("audit: encode heads to sign: %w", err)
	}
	return append([]byte(HeadsFormat+"\n"), b...), nil
}

// Sign signs the file with key, replacing any signature.
func (h *Heads) Sign(key ed25519.PrivateKey) error {
	msg, err := h.SignedBytes()
	if err != nil {
		return err
	}
	h.Signature = &Signature{Algorithm: SignatureAlgorithm, KeyID: KeyID(key.Public().(ed25519.PublicKey)),
		Value: base64.StdEncoding.EncodeToString(ed25519.Sign(key, msg))}
	return nil
}

// Errors of Heads.Verify.
var (
	// ErrUnsigned: the file has no signature, but a key was given to check
	// it with (was the signature removed?).
	ErrUnsigned = errors.New("the heads file is not signed")
	// ErrBadSignature: the signature does not verify with the key given:
	// the file was changed after signing, or signed with another key.
	ErrBadSignature = errors.New("the signature of the heads file does not verify")
)

// Verify checks the file's signature with pub. It returns ErrUnsigned or
// ErrBadSignature (wrapped, naming both keys) when it does not hold.
func (h *Heads) Verify(pub ed25519.PublicKey) error {
	if h.Signature == nil {
		return ErrUnsigned
	}
	msg, err := h.SignedBytes()
	if err != nil {
		return err
	}
	sig, err := base64.StdEncoding.DecodeString(h.Signature.Value)
	if err != nil || h.Signature.Algorithm != SignatureAlgorithm || !ed25519.Verify(pub, msg, sig) {
		return fmt.Errorf("%w with key %s (it names key %s)", ErrBadSignature, KeyID(pub), h.Signature.KeyID)
	}
	return nil
}

// Encode writes the file as indented JSON, with a final newline.
func (h *Heads) Encode(w io.Writer) error {
	b, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return fmt.Errorf("audit: encode heads: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// ParseHeads reads a heads file and checks its form: its format, and that
// every head names a room, that room's stream, a version and a hash. It
// does not check the signature (Verify does).
func ParseHeads(b []byte) (*Heads, error) {
	var h Heads
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&h); err != nil {
		return nil, fmt.Errorf("not a heads file: %w", err)
	}
	if h.Format != HeadsFormat {
		return nil, fmt.Errorf("format %q, want %q", h.Format, HeadsFormat)
	}
	for i, rh := range h.Heads {
		if _, err := ParseHash(rh.Hash); err != nil || rh.Room <= 0 || rh.Stream != room.Stream(rh.Room) || rh.Version < 0 {
			return nil, fmt.Errorf("head %d (room %d) is malformed: want a room id, its stream name, a version and a 64 hex digit hash", i, rh.Room)
		}
	}
	return &h, nil
}

// KeyID names a public key: the first 16 hex digits of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// GenerateKey returns a new key pair read from random, as PEM: the
// private key (PKCS #8) and the public key (PKIX).
func GenerateKey(random io.Reader) (privPEM, pubPEM []byte, pub ed25519.PublicKey, err error) {
	pub, priv, err := ed25519.GenerateKey(random)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("audit: generate a key: %w", err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("audit: encode the private key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("audit: encode the public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), pub, nil
}

// ParsePrivateKey reads an Ed25519 private key from a PEM PRIVATE KEY
// block.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	return parseKey[ed25519.PrivateKey](b, "PRIVATE KEY", x509.ParsePKCS8PrivateKey)
}

// ParsePublicKey reads an Ed25519 public key from a PEM PUBLIC KEY block.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	return parseKey[ed25519.PublicKey](b, "PUBLIC KEY", x509.ParsePKIXPublicKey)
}

// parseKey reads a key of type K from a PEM block of blockType, whose
// DER parse decodes.
func parseKey[K any](b []byte, blockType string, parse func([]byte) (any, error)) (K, error) {
	var zero K
	block, _ := pem.Decode(b)
	if block == nil || block.Type != blockType {
		return zero, fmt.Errorf("not a PEM %s file", blockType)
	}
	k, err := parse(block.Bytes)
	if err != nil {
		return zero, fmt.Errorf("parse the %s: %w", strings.ToLower(blockType), err)
	}
	key, ok := k.(K)
	if !ok {
		return zero, fmt.Errorf("it holds a %T, not an Ed25519 key", k)
	}
	return key, nil
}
