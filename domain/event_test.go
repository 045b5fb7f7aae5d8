package domain_test

import (
	"strings"
	"testing"

	"github.com/parleychat/parley/domain"
)

func TestUUIDRoundTripAndNameUUID(t *testing.T) {
	const s = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
	u, err := domain.ParseUUID(s)
	if err != nil || u.String() != s {
		t.Fatalf("ParseUUID(%s) = %s, %v", s, u, err)
	}
	// RFC 9562 appendix: the v5 UUID of "www.example.com" in the DNS namespace.
	if got := domain.NameUUID(u, "www.example.com").String(); got != "2ed6657d-e927-568b-95e1-2665a8aea6a2" {
		t.Errorf("NameUUID = %s, want 2ed6657d-e927-568b-95e1-2665a8aea6a2", got)
	}
	for _, bad := range []string{"", "6ba7b810-9dad-11d1-80b4-00c04fd430c", "6ba7b810x9dad-11d1-80b4-00c04fd430c8", "zba7b810-9dad-11d1-80b4-00c04fd430c8"} {
		if _, err := domain.ParseUUID(bad); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("ParseUUID(%q) err = %v, want invalid", bad, err)
		}
	}
}

func TestExpectedVersionHolds(t *testing.T) {
	tests := []struct {
		exp     domain.ExpectedVersion
		current int64
		want    bool
	}{
		{domain.Any(), domain.NoVersion, true},
		{domain.Any(), 3, true},
		{domain.NoStream(), domain.NoVersion, true},
		{domain.NoStream(), 0, false},
		{domain.StreamExists(), domain.NoVersion, false},
		{domain.StreamExists(), 0, true},
		{domain.Exact(2), 2, true},
		{domain.Exact(2), 1, false},
		{domain.Exact(-1), domain.NoVersion, true}, // Exact(NoVersion) is NoStream
	}
	for _, tc := range tests {
		if got := tc.exp.Holds(tc.current); got != tc.want {
			t.Errorf("%s.Holds(%d) = %v, want %v", tc.exp, tc.current, got, tc.want)
		}
	}
}

func TestPositionParseAndOrder(t *testing.T) {
	p := domain.Position{Commit: 12, Prepare: 7}
	got, err := domain.ParsePosition(p.String())
	if err != nil || got != p {
		t.Fatalf("ParsePosition(%s) = %v, %v", p, got, err)
	}
	for _, bad := range []string{"", "12", "12/x", "-1/2", "1/2/3"} {
		if _, err := domain.ParsePosition(bad); err == nil {
			t.Errorf("ParsePosition(%q) succeeded", bad)
		}
	}
	if !(domain.Position{Commit: 1, Prepare: 9}).Less(domain.Position{Commit: 2, Prepare: 1}) || p.Less(p) {
		t.Errorf("Position.Less orders by commit, then prepare")
	}
}

func TestValidateAppendMessages(t *testing.T) {
	ev := domain.EventData{ID: domain.MustParseUUID("6ba7b810-9dad-11d1-80b4-00c04fd430c8"), Type: "T", Data: []byte(`{}`)}
	err := domain.ValidateAppend("room-1", []domain.EventData{ev, {ID: ev.ID, Type: "T", Data: []byte(`{}`)}})
	if err == nil || !strings.Contains(err.Error(), "event 1") || !strings.Contains(err.Error(), "room-1") {
		t.Errorf("duplicate ID error %q should name the stream and the event", err)
	}
	if err := domain.ValidateAppend("room-1", []domain.EventData{ev}); err != nil {
		t.Errorf("valid append rejected: %v", err)
	}
}
