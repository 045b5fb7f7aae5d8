package domain

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// The audit chain (package domain/audit) ends the metadata of every event
// it writes with two fields, always last, always in this order and form:
//
//	,"prev_hash":"<64 lowercase hex>","hash":"<64 lowercase hex>"}
//
// (without the leading comma when the metadata has no other fields). This
// file is that envelope: WithChainFields adds the fields to a writer's
// metadata and SplitChainFields takes them off again. Metadata.PrevHash and
// Metadata.Hash read them. EventData.Size does not count them, so an event
// sized to MaxEventSize still fits once chained.

// chainHashLength is the length of a hash in the chain fields: 64 hex digits.
const chainHashLength = 64

const (
	chainPrefix = `"prev_hash":"`
	chainMiddle = `","hash":"`
	chainSuffix = `"}`
	// chainFieldsLength is the length of the fields and the closing brace.
	chainFieldsLength = len(chainPrefix) + chainHashLength + len(chainMiddle) + chainHashLength + len(chainSuffix)
)

// WithChainFields returns base with the chain fields prevHash and hash
// (64 lowercase hex digits each) appended as its last members. base is a
// JSON object or empty or null (no metadata); white space around it is
// dropped. It must not have prev_hash or hash members of its own: the
// caller checks that (it takes parsing the whole object).
func WithChainFields(base json.RawMessage, prevHash, hash string) (json.RawMessage, error) {
	if !isChainHash(prevHash) || !isChainHash(hash) {
		return nil, fmt.Errorf("chain hashes must be %d lowercase hex digits", chainHashLength)
	}
	b := bytes.TrimSpace(base)
	if len(b) == 0 || string(b) == "null" {
		b = []byte("{}")
	}
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return nil, fmt.Errorf("metadata must be a JSON object to carry the audit chain")
	}
	open := b[:len(b)-1] // without the closing brace
	out := make([]byte, 0, len(open)+1+chainFieldsLength)
	out = append(out, open...)
	if len(bytes.TrimSpace(open[1:])) > 0 {
		out = append(out, ',')
	}
	out = append(out, chainPrefix...)
	out = append(out, prevHash...)
	out = append(out, chainMiddle...)
	out = append(out, hash...)
	out = append(out, chainSuffix...)
	return out, nil
}

// SplitChainFields undoes WithChainFields: it returns the metadata without
// the chain fields (an empty object when it had no others) and the two
// hashes. ok is false unless meta is exactly what WithChainFields writes.
func SplitChainFields(meta json.RawMessage) (base json.RawMessage, prevHash, hash string, ok bool) {
	head, prev, h, ok := chainTail(meta)
	if !ok {
		return nil, "", "", false
	}
	base = make([]byte, 0, len(head)+1)
	base = append(base, bytes.TrimSuffix(head, []byte(","))...)
	base = append(base, '}')
	again, err := WithChainFields(base, prev, h)
	if err != nil || !bytes.Equal(again, meta) {
		return nil, "", "", false
	}
	return base, prev, h, true
}

// chainTail splits meta before its chain fields, without checking what
// comes before them.
func chainTail(meta []byte) (head []byte, prevHash, hash string, ok bool) {
	if len(meta) < chainFieldsLength+1 {
		return nil, "", "", false
	}
	head, tail := meta[:len(meta)-chainFieldsLength], meta[len(meta)-chainFieldsLength:]
	rest, ok := bytes.CutPrefix(tail, []byte(chainPrefix))
	if !ok {
		return nil, "", "", false
	}
	prev := string(rest[:chainHashLength])
	rest, ok = bytes.CutPrefix(rest[chainHashLength:], []byte(chainMiddle))
	if !ok {
		return nil, "", "", false
	}
	h := string(rest[:chainHashLength])
	if string(rest[chainHashLength:]) != chainSuffix || !isChainHash(prev) || !isChainHash(h) {
		return nil, "", "", false
	}
	return head, prev, h, true
}

// chainFieldsSize is how many bytes of meta the chain fields take (with
// their separator), or 0 when meta does not end with them. An object left
// with no other members counts as empty metadata, so nothing of it counts.
func chainFieldsSize(meta []byte) int {
	head, _, _, ok := chainTail(meta)
	switch {
	case !ok:
		return 0
	case bytes.HasSuffix(head, []byte(",")):
		return len(meta) - len(head) // the comma and the fields; the brace stays counted
	default:
		return len(meta) // nothing but the chain: as if there were no metadata
	}
}

func isChainHash(s string) bool {
	if len(s) != chainHashLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ChainHash returns the audit chain's hash at the end of an event's
// metadata, or "" when the metadata carries no chain fields (an event
// written before the chain, or by a store without it). It only looks at
// the end of meta, so it is cheap enough for every frame sent.
func ChainHash(meta []byte) string {
	if _, _, h, ok := chainTail(meta); ok {
		return h
	}
	return ""
}

// IsChainHash reports whether s has the form of a chain hash: 64
// lowercase hex digits.
func IsChainHash(s string) bool { return isChainHash(s) }
