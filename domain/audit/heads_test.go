package audit_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/domain/audit"
)

// keyPair generates a key pair from a fixed seed and reads both halves
// back from their PEM.
func keyPair(t *testing.T, seed byte) ([]byte, []byte) {
	t.Helper()
	privPEM, pubPEM, _, err := audit.GenerateKey(rand.NewChaCha8([32]byte{seed}))
	if err != nil {
		t.Fatal(err)
	}
	return privPEM, pubPEM
}

func TestHeadsSignAndVerify(t *testing.T) {
	privPEM, pubPEM := keyPair(t, 1)
	_, otherPEM := keyPair(t, 2)
	priv, err := audit.ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := audit.ParsePublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	other, err := audit.ParsePublicKey(otherPEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.ParsePublicKey(privPEM); err == nil {
		t.Error("a private key parsed as a public one")
	}
	if _, err := audit.ParsePrivateKey(pubPEM); err == nil {
		t.Error("a public key parsed as a private one")
	}

	hash := strings.Repeat("ab", 32)
	signedFile := func(t *testing.T) *audit.Heads {
		t.Helper()
		h := audit.NewHeads(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
		h.Add(7, audit.Head{Version: 12, Hash: hash})
		h.Add(9, audit.Head{Version: 3, Hash: strings.Repeat("cd", 32)})
		if err := h.Sign(priv); err != nil {
			t.Fatal(err)
		}
		return h
	}
	// The encoded file parses back to itself and verifies.
	var b bytes.Buffer
	if err := signedFile(t).Encode(&b); err != nil {
		t.Fatal(err)
	}
	back, err := audit.ParseHeads(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(back, signedFile(t)); diff != "" {
		t.Errorf("parsed file (-got +want):\n%s", diff)
	}
	if err := back.Verify(pub); err != nil {
		t.Errorf("Verify = %v", err)
	}
	if got, want := back.Signature.KeyID, audit.KeyID(pub); got != want || len(got) != 16 {
		t.Errorf("key id %q, want %q (16 hex digits)", got, want)
	}
	if diff := cmp.Diff(back.Anchors(), map[int64][]audit.Head{7: {{Version: 12, Hash: hash}}, 9: {{Version: 3, Hash: strings.Repeat("cd", 32)}}}); diff != "" {
		t.Errorf("anchors (-got +want):\n%s", diff)
	}

	for _, tc := range []struct {
		name string
		edit func(h *audit.Heads)
		key  []byte
		want error
	}{
		{"hash changed", func(h *audit.Heads) { h.Heads[0].Hash = strings.Repeat("00", 32) }, nil, audit.ErrBadSignature},
		{"version changed", func(h *audit.Heads) { h.Heads[1].Version-- }, nil, audit.ErrBadSignature},
		{"head dropped", func(h *audit.Heads) { h.Heads = h.Heads[1:] }, nil, audit.ErrBadSignature},
		{"time changed", func(h *audit.Heads) { h.ExportedAt = "2026-01-01T00:00:00Z" }, nil, audit.ErrBadSignature},
		{"signature changed", func(h *audit.Heads) { h.Signature.Value = "A" + h.Signature.Value[1:] }, nil, audit.ErrBadSignature},
		{"algorithm changed", func(h *audit.Heads) { h.Signature.Algorithm = "rsa" }, nil, audit.ErrBadSignature},
		{"signature removed", func(h *audit.Heads) { h.Signature = nil }, nil, audit.ErrUnsigned},
		{"another key", func(*audit.Heads) {}, otherPEM, audit.ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := signedFile(t)
			tc.edit(h)
			key := pub
			if tc.key != nil {
				key = other
			}
			if err := h.Verify(key); !errors.Is(err, tc.want) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParseHeadsRefusesMalformedFiles(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	for _, tc := range []struct{ name, file, want string }{
		{"not JSON", `heads`, "not a heads file"},
		{"another format", `{"format": "parley-audit-heads/2", "heads": []}`, "format"},
		{"a stream of another room", `{"format": "parley-audit-heads/1", "heads": [{"room": 1, "stream": "room-2", "version": 0, "hash": "` + hash + `"}]}`, "malformed"},
		{"no room", `{"format": "parley-audit-heads/1", "heads": [{"stream": "room-0", "version": 0, "hash": "` + hash + `"}]}`, "malformed"},
		{"a short hash", `{"format": "parley-audit-heads/1", "heads": [{"room": 1, "stream": "room-1", "version": 0, "hash": "abcd"}]}`, "malformed"},
		{"a negative version", `{"format": "parley-audit-heads/1", "heads": [{"room": 1, "stream": "room-1", "version": -1, "hash": "` + hash + `"}]}`, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := audit.ParseHeads([]byte(tc.file)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseHeads = %v, want an error with %q", err, tc.want)
			}
		})
	}
}
