package audit

import (
	"strings"
	"testing"

	"github.com/parleychat/parley/domain"
)

// TestEventHashGolden pins the documented encoding. The expected values
// were computed independently (Python's hashlib over the encoding the
// package documentation describes).
func TestEventHashGolden(t *testing.T) {
	h1 := EventHash(Genesis, "room-42", 3, domain.MustParseUUID("01020304-0506-0708-090a-0b0c0d0e0f10"),
		"MessagePosted", []byte(`{"text":"hi"}`), []byte(`{"user_id":"7"}`))
	if got, want := h1.String(), "ad86034c8b09856eb4f5769f2a1722d62e3419658d9e1f6f81640594bdaeaacc"; got != want {
		t.Errorf("first hash = %s, want %s", got, want)
	}
	h2 := EventHash(h1, "room-42", 4, domain.MustParseUUID("01020304-0506-0708-090a-0b0c0d0e0f11"),
		"AnswerChunk", []byte(`{"delta":"x"}`), []byte(`{}`))
	if got, want := h2.String(), "ceecda438eacb8bf90a156bbee0d9ccd8d99c7f30a35985e283f843d93efe423"; got != want {
		t.Errorf("second hash = %s, want %s", got, want)
	}
}

// TestEventHashFieldsAreDelimited: moving bytes between adjacent fields
// changes the hash (the length prefixes keep fields apart).
func TestEventHashFieldsAreDelimited(t *testing.T) {
	id := domain.MustParseUUID("01020304-0506-0708-090a-0b0c0d0e0f10")
	a := EventHash(Genesis, "room-1", 0, id, "AB", []byte(`{}`), []byte(`{}`))
	b := EventHash(Genesis, "room-1", 0, id, "A", []byte(`B{}`), []byte(`{}`))
	c := EventHash(Genesis, "room-1", 0, id, "AB", []byte(`{}{`), []byte(`}`))
	if a == b || a == c || b == c {
		t.Errorf("hashes collide across field boundaries: %s %s %s", a, b, c)
	}
}

func TestParseHash(t *testing.T) {
	good := strings.Repeat("0f", 32)
	if h, err := ParseHash(good); err != nil || h.String() != good {
		t.Errorf("ParseHash(%s) = %s, %v", good, h, err)
	}
	for _, bad := range []string{"", "0f", strings.ToUpper(good), good + "00", strings.Repeat("zz", 32)} {
		if _, err := ParseHash(bad); err == nil {
			t.Errorf("ParseHash(%q) accepted", bad)
		}
	}
}

func TestHeadCache(t *testing.T) {
	c := newHeadCache(2)
	h := func(b byte) Hash { return Hash{b} }
	c.put("a", 1, h(1))
	c.put("b", 5, h(5))
	if got, ok := c.get("a", 1); !ok || got != h(1) {
		t.Errorf("get a@1 = %v, %v", got, ok)
	}
	c.put("c", 0, h(9)) // evicts b, the least recently used
	if _, ok := c.get("b", 5); ok {
		t.Errorf("b still cached after eviction")
	}
	if c.len() != 2 {
		t.Errorf("len = %d, want 2", c.len())
	}
	c.put("a", 0, h(0)) // older than what is known: ignored
	if got, ok := c.get("a", 1); !ok || got != h(1) {
		t.Errorf("an older version replaced a newer one: get a@1 = %v, %v", got, ok)
	}
	if _, ok := c.get("a", 2); ok {
		t.Errorf("get a@2 hit, but only version 1 is known")
	}
	c.put("a", 3, h(3))
	if got, ok := c.get("a", 3); !ok || got != h(3) {
		t.Errorf("get a@3 = %v, %v", got, ok)
	}
}
