package audit_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/parleychat/parley/adapters/inmem"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/audit"
	"github.com/parleychat/parley/domain/domaintest"
)

// chainedRoom writes n chained events to a room stream and returns them
// as stored.
func chainedRoom(t *testing.T, n int) []domain.RecordedEvent {
	t.Helper()
	inner := inmem.New(nil)
	s := audit.NewChainingStore(inner, audit.ChainOptions{})
	for i := range n {
		ev := event(t, "AnswerChunk", fmt.Sprintf(`{"seq":%d,"delta":"word %d "}`, i, i))
		if _, err := s.Append(t.Context(), "room-1", domain.Exact(int64(i)-1), ev); err != nil {
			t.Fatal(err)
		}
	}
	return readAll(t, inner, "room-1")
}

// rechain recomputes every hash from version from on, as someone who
// rewrote history and covered their tracks would.
func rechain(t *testing.T, evs []domain.RecordedEvent, from int) {
	t.Helper()
	prev := audit.Genesis
	for i := range evs {
		base, p, h, ok := domain.SplitChainFields(evs[i].Metadata)
		if !ok {
			t.Fatalf("event %d has no chain fields", i)
		}
		if i < from {
			prev, _ = audit.ParseHash(h)
			continue
		}
		_ = p
		evs[i].Version = int64(i)
		nh := audit.EventHash(prev, evs[i].Stream, evs[i].Version, evs[i].ID, evs[i].Type, evs[i].Data, base)
		meta, err := domain.WithChainFields(base, prev.String(), nh.String())
		if err != nil {
			t.Fatal(err)
		}
		evs[i].Metadata = meta
		prev = nh
	}
}

func setMeta(t *testing.T, ev *domain.RecordedEvent, f func(m map[string]any)) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(ev.Metadata, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	// Keep the chain fields last, in their form, so only the edit differs.
	prev, _ := m["prev_hash"].(string)
	h, _ := m["hash"].(string)
	delete(m, "prev_hash")
	delete(m, "hash")
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if prev == "" || h == "" {
		ev.Metadata = b
		return
	}
	if ev.Metadata, err = domain.WithChainFields(b, prev, h); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	const n = 10
	for _, tc := range []struct {
		name    string
		tamper  func(t *testing.T, evs []domain.RecordedEvent) []domain.RecordedEvent
		anchors func(orig []domain.RecordedEvent) []audit.Head
		want    *audit.Break // Version and Kind compared
	}{
		{name: "untouched"},
		{name: "data changed", want: &audit.Break{Version: 3, Kind: audit.BreakContent},
			tamper: func(t *testing.T, evs []domain.RecordedEvent) []domain.RecordedEvent {
				evs[3].Data = json.RawMessage(`{"seq":3,"delta":"something else "}`)
				return evs
			}},
		{name: "data reformatted only", want: &audit.Break{Version: 6, Kind: audit.BreakContent},
			tamper: func(t *testing.T, evs []domain.RecordedEvent) []domain.RecordedEvent {
				evs[6].Data = json.RawMessage(strings.ReplaceAll(string(evs[6].Data), ",", ", "))
				return evs
			}},
		{name: "type changed", want: &audit.Break{Version: 5, Kind: audit.BreakContent},
			tamper: func(t *testing.T, evs []domain.RecordedEvent) []domain.RecordedEvent {
				evs[5].Type = "AnswerCancelled"
				return evs
			}},
		{name: "id changed", want: &audit.Break{Version: 1, Kind: audit.BreakContent},
			tamper: func(t *testing.T, evs []domain.RecordedEvent) []domain.RecordedEvent {
				evs[1].ID = domain.MustParseUUID("00000000-0000-4000-8000-000000000001")
				return evs
			}},
		{name: "user edited in metadata", want: &audit.Break{Version: 4, Kind: audit.BreakContent},
			tamper: func(t *testing.T, evs []domain.RecordedEvent) []domain.RecordedEvent {
				setMeta(t, &evs[4], func(m map[string]any) { m["user_id"] = "666" })
				return evs
			}},
		{name: "time edited in metadata", want: &audit.Break{Version: 2, Kind: audit.BreakContent},
			tamper: func(t *testing.T, evs []domain.RecordedEvent) []domain.RecordedEvent {
				setMeta(t, &evs[2], func(m map[string]any) { m["occurred_at"] = "2020-01-01T00:00:00Z" })
				return evs
			}},
		{name: "chain fields stripped", want: &audit.Break{Version: 7, Kind: audit.BreakUnchained},
			tamper: func(t *testing.T, evs []domain.RecordedEvent) []domain.RecordedEvent {
				setMeta(t, &evs[7], func(m map[string]any) { delete(m, "prev_hash"); delete(m, "hash") })
				return evs
			}},
		{name: "hash recomputed for one changed event", want: &audit.Break{Version: 4, Kind: audit.BreakLink},
			tamper: func(t *testing.T, evs []domain.RecordedEvent) []domain.RecordedEvent {
				evs[3].Data = json.RawMessage(`{"seq":3,"delta":"forged "}`)
				base, p, _, _ := domain.SplitChainFields(evs[3].Metadata)
				prev, _ := audit.ParseHash(p)
				h := audit.EventHash(prev, evs[3].Stream, 3, evs[3].ID, evs[3].Type, evs[3].Data, base)
				evs[3].Metadata, _ = domain.WithChainFields(base, p, h.String())
				return evs
			}},
		{name: "event deleted", want: &audit.Break{Version: 4, Kind: audit.BreakGap},
			tamper: func(t *testing.T, evs []domain.RecordedEvent) []domain.RecordedEvent {
				return slices.Delete(evs, 4, 5)
			}},
		{name: "first event deleted", want: &audit.Break{Version: 0, Kind: audit.BreakGap},
			tamper: func(t *testing.T, evs []domain.RecordedEvent) []domain.RecordedEvent {
				return evs[1:]
			}},
		{name: "event deleted and the rest renumbered", want: &audit.Break{Version: 4, Kind: audit.BreakLink},
			tamper: func(t *testing.T, evs []domain.RecordedEvent) []domain.RecordedEvent {
				evs = slices.Delete(evs, 4, 5)
				for i := range evs {
					evs[i].Version = int64(i)
				}
				return evs
			}},
		{name: "two events swapped (data and type)", want: &audit.Break{Version: 2, Kind: audit.BreakContent},
			tamper: func(t *testing.T, evs []domain.RecordedEvent) []domain.RecordedEvent {
				evs[2].Data, evs[5].Data = evs[5].Data, evs[2].Data
				evs[2].Type, evs[5].Type = evs[5].Type, evs[2].Type
				return evs
			}},
		{name: "two whole events swapped", want: &audit.Break{Version: 2, Kind: audit.BreakLink},
			tamper: func(t *testing.T, evs []domain.RecordedEvent) []domain.RecordedEvent {
				evs[2], evs[3] = evs[3], evs[2]
				evs[2].Version, evs[3].Version = 2, 3
				return evs
			}},
		{name: "event moved from another stream", want: &audit.Break{Version: 8, Kind: audit.BreakOrder},
			tamper: func(t *testing.T, evs []domain.RecordedEvent) []domain.RecordedEvent {
				evs[8].Stream = "room-2"
				return evs
			}},
		{name: "whole chain rewritten consistently", want: nil,
			tamper: func(t *testing.T, evs []domain.RecordedEvent) []domain.RecordedEvent {
				evs[3].Data = json.RawMessage(`{"seq":3,"delta":"forged "}`)
				rechain(t, evs, 3)
				return evs
			}},
		{name: "rewrite caught by an exported head", want: &audit.Break{Version: 9, Kind: audit.BreakAnchor},
			tamper: func(t *testing.T, evs []domain.RecordedEvent) []domain.RecordedEvent {
				evs[3].Data = json.RawMessage(`{"seq":3,"delta":"forged "}`)
				rechain(t, evs, 3)
				return evs
			},
			anchors: func(orig []domain.RecordedEvent) []audit.Head { return []audit.Head{head(orig[9])} }},
		{name: "rewrite caught by an older exported head", want: &audit.Break{Version: 5, Kind: audit.BreakAnchor},
			tamper: func(t *testing.T, evs []domain.RecordedEvent) []domain.RecordedEvent {
				evs[3].Data = json.RawMessage(`{"seq":3,"delta":"forged "}`)
				rechain(t, evs, 3)
				return evs
			},
			anchors: func(orig []domain.RecordedEvent) []audit.Head { return []audit.Head{head(orig[1]), head(orig[5])} }},
		{name: "rewrite after the exported head is not a break", want: nil,
			tamper: func(t *testing.T, evs []domain.RecordedEvent) []domain.RecordedEvent {
				evs[7].Data = json.RawMessage(`{"seq":7,"delta":"forged "}`)
				rechain(t, evs, 7)
				return evs
			},
			anchors: func(orig []domain.RecordedEvent) []audit.Head { return []audit.Head{head(orig[6])} }},
		{name: "tail deleted, caught by an exported head", want: &audit.Break{Version: 9, Kind: audit.BreakTruncated},
			tamper: func(t *testing.T, evs []domain.RecordedEvent) []domain.RecordedEvent {
				return evs[:7]
			},
			anchors: func(orig []domain.RecordedEvent) []audit.Head { return []audit.Head{head(orig[9])} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig := chainedRoom(t, n)
			evs := slices.Clone(orig)
			if tc.tamper != nil {
				evs = tc.tamper(t, evs)
			}
			var anchors []audit.Head
			if tc.anchors != nil {
				anchors = tc.anchors(orig)
			}
			res := mustVerify(t, domaintest.FixedStream{Stream: "room-1", Events: evs}, "room-1", anchors...)
			switch {
			case tc.want == nil && res.FirstBroken != nil:
				t.Errorf("break %s (%s), want none", res.FirstBroken, res.FirstBroken.Kind)
			case tc.want != nil && res.FirstBroken == nil:
				t.Errorf("no break, want one at version %d (%s)", tc.want.Version, tc.want.Kind)
			case tc.want != nil && (res.FirstBroken.Version != tc.want.Version || res.FirstBroken.Kind != tc.want.Kind):
				t.Errorf("break %s (%s), want version %d (%s)", res.FirstBroken, res.FirstBroken.Kind, tc.want.Version, tc.want.Kind)
			}
			if res.FirstBroken != nil && res.FirstBroken.Reason == "" {
				t.Errorf("break without a reason")
			}
			if tc.want == nil && res.Events != len(evs) {
				t.Errorf("checked %d events, want %d", res.Events, len(evs))
			}
		})
	}
}

func head(ev domain.RecordedEvent) audit.Head {
	var m domain.Metadata
	_ = json.Unmarshal(ev.Metadata, &m)
	return audit.Head{Version: ev.Version, Hash: m.Hash}
}

func TestVerifyPagesLongStreams(t *testing.T) {
	const n = 2*domain.DefaultReadLimit + 17
	inner := inmem.New(nil)
	s := audit.NewChainingStore(inner, audit.ChainOptions{})
	for i := 0; i < n; i += 100 {
		var batch []domain.EventData
		for j := i; j < min(i+100, n); j++ {
			batch = append(batch, event(t, "AnswerChunk", fmt.Sprintf(`{"seq":%d}`, j)))
		}
		if _, err := s.Append(t.Context(), "room-2", domain.Exact(int64(i)-1), batch...); err != nil {
			t.Fatal(err)
		}
	}
	res := mustVerify(t, inner, "room-2")
	if !res.OK() || res.Events != n || res.Head.Version != n-1 {
		t.Errorf("VerifyStream = %+v, want %d events up to version %d", res, n, n-1)
	}
}

func TestVerifyMissingStream(t *testing.T) {
	_, err := audit.VerifyStream(t.Context(), inmem.New(nil), "room-404")
	if !strings.Contains(fmt.Sprint(err), "not found") {
		t.Errorf("err = %v, want stream not found", err)
	}
}
