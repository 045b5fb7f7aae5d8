package room

import (
	"fmt"
	"strconv"
	"time"

	"github.com/parleychat/parley/domain"
)

// Moment is a point in a room's stream: just after the event at a given
// version, or just after the last event recorded at or before a given
// time. Build one with AtVersion or AtTime.
type Moment struct {
	version int64
	at      time.Time
	byTime  bool
}

// AtVersion is the moment just after the event at version v.
func AtVersion(v int64) Moment { return Moment{version: v} }

// AtTime is the moment t: every event recorded at or before it has
// happened.
func AtTime(t time.Time) Moment { return Moment{at: t, byTime: true} }

// ParseMoment reads a version (a non-negative integer) or an RFC 3339
// time, as `chatctl replay --as-of` takes it.
func ParseMoment(s string) (Moment, error) {
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		if v < 0 {
			return Moment{}, domain.Errorf(domain.EINVALID, "version %d is negative; the first event of a stream is version 0", v)
		}
		return AtVersion(v), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return Moment{}, domain.Errorf(domain.EINVALID, "%q is neither a stream version (0, 1, ...) nor an RFC 3339 time (2026-01-02T15:04:05Z)", s)
	}
	return AtTime(t), nil
}

// Includes reports whether ev had happened at the moment.
func (m Moment) Includes(ev domain.RecordedEvent) bool {
	if m.byTime {
		return !ev.RecordedAt.After(m.at)
	}
	return ev.Version <= m.version
}

// String names the moment: its time in RFC 3339, or "version N".
func (m Moment) String() string {
	if m.byTime {
		return m.at.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("version %d", m.version)
}

// Prefix returns the events of one room's stream, given in version order,
// that had happened at the moment. It stops at the first event the moment
// does not include, so the result is always a prefix of the stream, also
// where recorded times are not monotonic.
func (m Moment) Prefix(events []domain.RecordedEvent) []domain.RecordedEvent {
	for i, ev := range events {
		if !m.Includes(ev) {
			return events[:i]
		}
	}
	return events
}

// HistoryAsOf folds the events of one room's stream, in version order, up
// to the moment (see Prefix): the conversation as it stood then, each
// message with the status it had.
func HistoryAsOf(events []domain.RecordedEvent, m Moment) (*History, error) {
	h := NewHistory()
	for _, ev := range m.Prefix(events) {
		if err := h.Apply(ev); err != nil {
			return nil, err
		}
	}
	return h, nil
}
