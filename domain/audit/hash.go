package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"

	"github.com/parleychat/parley/domain"
)

// Tag is the first field of every hashed event encoding; it names the
// encoding's version.
const Tag = "parley-audit-chain/1"

// Hash is a link of the chain: a SHA-256 digest.
type Hash [sha256.Size]byte

// Genesis is the prev_hash of a stream's first event: 32 zero bytes.
var Genesis Hash

// String returns the hash as 64 lowercase hex digits, the form metadata
// and exported heads carry.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// ParseHash parses the form String returns.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*len(h) {
		return Hash{}, fmt.Errorf("hash %q is not %d hex digits", s, 2*len(h))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil || h.String() != s {
		return Hash{}, fmt.Errorf("hash %q is not %d lowercase hex digits", s, 2*len(h))
	}
	return h, nil
}

// EventHash returns the hash of an event at version of stream whose
// predecessor's hash is prev; meta is the metadata without the chain
// fields (see the package documentation for the encoding).
func EventHash(prev Hash, stream string, version int64, id domain.UUID, typ string, data, meta []byte) Hash {
	h := sha256.New()
	h.Write(prev[:])
	writeField(h, []byte(Tag))
	writeField(h, []byte(stream))
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(version))
	writeField(h, v[:])
	writeField(h, id[:])
	writeField(h, []byte(typ))
	writeField(h, data)
	writeField(h, meta)
	var out Hash
	h.Sum(out[:0])
	return out
}

func writeField(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

// link is what one stored event says about the chain.
type link struct {
	chained bool // it carries chain fields
	prev    Hash // its prev_hash, when chained
	stored  Hash // its hash field, when chained
	// computed is its hash recomputed from its content and the prev passed
	// to inspect (not its own prev_hash field).
	computed Hash
}

// inspect reads ev's chain fields and recomputes its hash after prev. An
// event without well-formed chain fields is unchained and hashed with its
// metadata as stored.
func inspect(ev domain.RecordedEvent, prev Hash) link {
	base, p, h, ok := domain.SplitChainFields(ev.Metadata)
	if !ok {
		return link{computed: EventHash(prev, ev.Stream, ev.Version, ev.ID, ev.Type, ev.Data, ev.Metadata)}
	}
	l := link{chained: true, computed: EventHash(prev, ev.Stream, ev.Version, ev.ID, ev.Type, ev.Data, base)}
	// SplitChainFields accepted both as lowercase hex, so these cannot fail.
	l.prev, _ = ParseHash(p)
	l.stored, _ = ParseHash(h)
	return l
}

// storedHash returns ev's hash field when it is chained.
func storedHash(ev domain.RecordedEvent) (Hash, bool) {
	_, _, h, ok := domain.SplitChainFields(ev.Metadata)
	if !ok {
		return Hash{}, false
	}
	hh, err := ParseHash(h)
	return hh, err == nil
}
