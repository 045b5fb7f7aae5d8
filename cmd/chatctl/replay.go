package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/parleychat/parley/cmd/internal/cli"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/room"
)

const replayUsage = `usage: chatctl replay --room N [--format text|jsonl] [--speed max|1x|10x] [--max-gap 5s]
                      [--as-of VERSION|TIME] [--follow] [--operator NAME]

Prints room N's conversation as it happened, read from its event stream:
who asked what and when, each answer streamed chunk by chunk, failures,
cancellations, audits, and any other event (shown by its type and data).

The read is recorded in the room's stream as an AuditAccessed event
(interface cli, user --operator) before anything is printed; the replay
shows the stream up to just before that record (--follow shows it live).

  --format text    who, when, what (default)
  --format jsonl   every event, one JSON object a line: stream, version,
                   position, id, type, recorded_at, metadata, data
  --speed max      print at once (default); 1x waits the recorded gaps
                   between events, 10x ten times less, 0.5x twice as long
  --max-gap 5s     the longest single wait at any speed, so that a night
                   between two questions does not stall a replay; 0: none
  --as-of V|TIME   the room as it stood just after stream version V or at
                   an RFC 3339 time: each message with its status then
                   (jsonl: one message a line)
  --follow         after the replay, print events as they are appended,
                   until interrupted or the room is deleted

` + readerEnvironment

// readerEnvironment ends the usage of the commands that read the log
// for an operator (replay, export).
const readerEnvironment = `Environment:
  PARLEY_EVENT_STORE    the event store chatd uses: postgres (default) or kurrentdb
  PARLEY_DATABASE_URL   Postgres (default: the local development database)
  PARLEY_KURRENTDB_URL  KurrentDB's connection string, for PARLEY_EVENT_STORE=kurrentdb
  PARLEY_OPERATOR       default --operator (else $USER)
` + keysEnvironment

// replayOptions is a parsed `chatctl replay` command line.
type replayOptions struct {
	roomID   int64
	format   string  // "text" or "jsonl"
	speed    float64 // 0: as fast as possible
	maxGap   time.Duration
	asOf     *room.Moment
	follow   bool
	operator string
}

func parseReplay(args []string, getenv func(string) string, stdout io.Writer) (replayOptions, error) {
	fs := cli.NewFlagSet("replay")
	roomID := fs.Int64("room", 0, "id of the room to replay (required)")
	format := fs.String("format", "text", "text or jsonl")
	speed := fs.String("speed", "max", "max, or a factor of the recorded pace: 1x, 10x, 0.5x")
	maxGap := fs.Duration("max-gap", 5*time.Second, "longest single wait between two events at any speed; 0 means no limit")
	asOf := fs.String("as-of", "", "show the room as it stood at a stream version or an RFC 3339 time")
	follow := fs.Bool("follow", false, "keep printing new events until interrupted")
	operator := fs.String("operator", "", "who is reading, recorded in the room's stream (default $PARLEY_OPERATOR, else $USER)")
	if err := cli.Parse(fs, args, "chatctl replay", replayUsage, stdout); err != nil {
		return replayOptions{}, err
	}
	o := replayOptions{roomID: *roomID, format: *format, maxGap: *maxGap, follow: *follow, operator: *operator}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var problems []string
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected argument %q (everything is a flag; see chatctl replay --help)", fs.Arg(0)))
	}
	if o.roomID <= 0 {
		problems = append(problems, "--room is required: the room's id, a positive integer (e.g. --room 1234)")
	}
	if o.format != "text" && o.format != "jsonl" {
		problems = append(problems, fmt.Sprintf("--format %q: want text or jsonl", o.format))
	}
	var err error
	if o.speed, err = parseSpeed(*speed); err != nil {
		problems = append(problems, err.Error())
	}
	if o.maxGap < 0 {
		problems = append(problems, fmt.Sprintf("--max-gap %v is negative; use 0 for no limit", o.maxGap))
	}
	if *asOf != "" {
		m, err := room.ParseMoment(*asOf)
		if err != nil {
			problems = append(problems, "--as-of: "+domain.ErrorMessage(err))
		} else {
			o.asOf = &m
		}
		for _, f := range []string{"follow", "speed", "max-gap"} {
			if set[f] {
				problems = append(problems, fmt.Sprintf("--%s cannot be combined with --as-of, which shows one moment", f))
			}
		}
	}
	if o.operator, err = operatorName(o.operator, getenv); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return replayOptions{}, cli.Usage(errors.New("replay: " + strings.Join(problems, "\nreplay: ")))
	}
	return o, nil
}

// parseSpeed reads "max" (0) or a positive factor with an optional "x".
func parseSpeed(s string) (float64, error) {
	if s == "max" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(strings.TrimSuffix(s, "x"), 64)
	if err != nil || f <= 0 || f > 1e6 {
		return 0, fmt.Errorf("--speed %q: want max or a factor of the recorded pace such as 1x, 10x or 0.5x", s)
	}
	return f, nil
}

// operatorName is who a CLI read is recorded as: the flag, else
// PARLEY_OPERATOR, else USER.
func operatorName(flagValue string, getenv func(string) string) (string, error) {
	for _, v := range []string{flagValue, getenv("PARLEY_OPERATOR"), getenv("USER")} {
		if v = strings.TrimSpace(v); v != "" {
			return v, nil
		}
	}
	return "", errors.New("cannot tell who is reading: pass --operator NAME or set PARLEY_OPERATOR (the read is recorded in the room's stream)")
}

// runReplay implements `chatctl replay`.
func runReplay(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseReplay(args, getenv, stdout)
	if err != nil {
		return helpOK(err)
	}
	store, _, closeStore, err := openRoomLog(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer closeStore()
	r := &replayer{store: store, out: stdout, sleep: sleepContext, now: time.Now, random: rand.Reader}
	return r.run(ctx, o)
}

// replayStore is what a replay needs of the event store: reading and
// following the room's stream, and appending the AuditAccessed record.
type replayStore interface {
	domain.Appender
	domain.StreamReader
	SubscribeStream(ctx context.Context, stream string, after int64, h domain.Handler) error
}

// replayer replays one room. Its clock, randomness and sleeping are
// injected so tests control them.
type replayer struct {
	store  replayStore
	out    io.Writer
	sleep  func(ctx context.Context, d time.Duration) error
	now    func() time.Time
	random io.Reader
}

// sleepContext waits d or until ctx is done.
func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// errRoomDeleted ends a --follow when the room is deleted.
var errRoomDeleted = errors.New("room deleted")

func (r *replayer) run(ctx context.Context, o replayOptions) error {
	upto, err := recordCLIAccess(ctx, r.store, o.roomID, o.operator, r.now, r.random)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(r.out)
	defer w.Flush()
	if o.asOf != nil {
		return r.asOf(ctx, w, o, upto)
	}
	p := newPrinter(o.format, w)
	var prev time.Time
	err = readStream(ctx, r.store, o.roomID, 0, upto, func(ev domain.RecordedEvent) error {
		if d := wait(prev, ev.RecordedAt, o.speed, o.maxGap); d > 0 {
			if err := w.Flush(); err != nil {
				return err
			}
			if err := r.sleep(ctx, d); err != nil {
				return err
			}
		}
		prev = ev.RecordedAt
		if dp, ok := p.(deltaPrinter); ok && o.speed > 0 && room.IsChunk(ev.Type) {
			// A chunk of several deltas keeps their pace: each waits its
			// offset from the one before.
			return dp.deltas(ev, func(gap time.Duration) error {
				if d := pace(gap, o.speed, o.maxGap); d > 0 {
					if err := w.Flush(); err != nil {
						return err
					}
					return r.sleep(ctx, d)
				}
				return nil
			})
		}
		return p.event(ev)
	})
	if err == nil && o.follow {
		err = r.store.SubscribeStream(ctx, room.Stream(o.roomID), upto, func(_ context.Context, batch []domain.RecordedEvent) error {
			for _, ev := range batch {
				if err := p.event(ev); err != nil {
					return err
				}
				if ev.Type == room.TypeRoomDeleted || ev.Type == room.TypeRoomErased {
					return errRoomDeleted
				}
			}
			return w.Flush()
		})
	}
	if ferr := p.finish(); err == nil {
		err = ferr
	}
	switch {
	case errors.Is(err, errRoomDeleted):
		return nil
	case err != nil && ctx.Err() != nil:
		return nil // interrupted: what was printed stands
	case err != nil:
		return fmt.Errorf("replay room %d: %w", o.roomID, err)
	}
	return nil
}

// wait is how long to pause before an event recorded at `at` when the
// previous one was recorded at prev: pace of the gap; nothing for the
// first event.
func wait(prev, at time.Time, speed float64, maxGap time.Duration) time.Duration {
	if prev.IsZero() {
		return 0
	}
	return pace(at.Sub(prev), speed, maxGap)
}

// pace is how long to pause for a recorded gap: the gap divided by speed,
// at most maxGap (when positive); nothing at speed 0 (max) or for a gap
// that is not positive.
func pace(gap time.Duration, speed float64, maxGap time.Duration) time.Duration {
	if speed <= 0 || gap <= 0 {
		return 0
	}
	d := time.Duration(float64(gap) / speed)
	if maxGap > 0 && d > maxGap {
		d = maxGap
	}
	return d
}

// recordCLIAccess records an operator's read of room id as AuditAccessed
// (interface cli) and returns the version just before the record: what
// the read shows. A room without events is a not_found error and gets no
// record.
func recordCLIAccess(ctx context.Context, s domain.Appender, id int64, operator string, now func() time.Time, random io.Reader) (int64, error) {
	eventID, err := domain.NewUUID(random)
	if err != nil {
		return 0, err
	}
	res, err := chat.RecordAccess(ctx, s, id, eventID, room.AuditAccessed{UserID: operator, Interface: room.InterfaceCLI, At: now()})
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return 0, domain.Errorf(domain.ENOTFOUND, "room %d does not exist: its stream %s has no events", id, room.Stream(id))
	}
	if err != nil {
		return 0, fmt.Errorf("record this read in room %d's stream (an audited read must be recorded): %w", id, err)
	}
	return res.Version - 1, nil
}

// readPage is how many events a replay reads at once.
const readPage = 500

// readStream calls f with the events of room id from version from to upto
// (inclusive), in order, a page at a time.
func readStream(ctx context.Context, s domain.StreamReader, id, from, upto int64, f func(domain.RecordedEvent) error) error {
	if from > upto {
		return nil
	}
	for ev, err := range domain.StreamEvents(ctx, s, room.Stream(id), domain.ReadStreamOptions{From: from, Limit: readPage}) {
		if err != nil {
			return err
		}
		if ev.Version > upto {
			return nil
		}
		if err := f(ev); err != nil {
			return err
		}
	}
	return nil
}

// asOf prints the room as it stood at o.asOf.
func (r *replayer) asOf(ctx context.Context, w *bufio.Writer, o replayOptions, upto int64) error {
	m := *o.asOf
	var evs []domain.RecordedEvent
	errPast := errors.New("past the moment")
	err := readStream(ctx, r.store, o.roomID, 0, upto, func(ev domain.RecordedEvent) error {
		if !m.Includes(ev) {
			return errPast
		}
		evs = append(evs, ev)
		return nil
	})
	if err != nil && !errors.Is(err, errPast) {
		return fmt.Errorf("replay room %d as of %s: %w", o.roomID, m, err)
	}
	if len(evs) == 0 {
		return domain.Errorf(domain.ENOTFOUND, "room %d did not exist yet at %s", o.roomID, m)
	}
	h, err := room.HistoryAsOf(evs, m)
	if err != nil {
		return fmt.Errorf("replay room %d as of %s: %w", o.roomID, m, err)
	}
	st := room.NewState()
	for _, ev := range evs {
		if err := st.Evolve(ev); err != nil {
			return fmt.Errorf("replay room %d as of %s: %w", o.roomID, m, err)
		}
	}
	if o.format == "jsonl" {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		for _, msg := range h.Messages {
			if err := enc.Encode(messageLine(msg)); err != nil {
				return err
			}
		}
		return nil
	}
	last := evs[len(evs)-1]
	fmt.Fprintf(w, "room %d %q, owner %s, as of %s: stream version %d, its last event recorded %s\n",
		st.ID, st.Title, st.Owner, m, h.Version, stamp(last.RecordedAt))
	if st.Deleted {
		fmt.Fprintln(w, "the room was deleted by then")
	}
	if len(h.Messages) == 0 {
		fmt.Fprintln(w, "no messages yet")
	}
	for _, msg := range h.Messages {
		fmt.Fprintf(w, "%s  v%-4d  %s (%s)\n", stamp(msg.CreatedAt), msg.Version, msg.Role, msg.Status)
		writeIndented(w, msg.Text, "    ")
		writeSources(w, msg.Sources)
	}
	return nil
}

// messageJSON is a message as `replay --as-of --format jsonl` prints it.
type messageJSON struct {
	ID        string        `json:"id"`
	Role      string        `json:"role"`
	Text      string        `json:"text"`
	Status    string        `json:"status"`
	Sources   []room.Source `json:"sources"`
	ClientID  string        `json:"client_id,omitempty"`
	CreatedAt time.Time     `json:"created_at"`
	UpdatedAt time.Time     `json:"updated_at"`
	Version   int64         `json:"version"`
}

func messageLine(m room.Message) messageJSON {
	src := m.Sources
	if src == nil {
		src = []room.Source{}
	}
	return messageJSON{ID: m.ID.String(), Role: m.Role, Text: m.Text, Status: m.Status, Sources: src, ClientID: m.ClientID,
		CreatedAt: m.CreatedAt.UTC(), UpdatedAt: m.UpdatedAt.UTC(), Version: m.Version}
}

// stampFormat is how the text output shows times: RFC 3339 in UTC with
// milliseconds.
const stampFormat = "2006-01-02T15:04:05.000Z07:00"

func stamp(t time.Time) string { return t.UTC().Format(stampFormat) }

// writeIndented writes text with every line indented, ending in a newline.
func writeIndented(w io.Writer, text, indent string) {
	if text == "" {
		return
	}
	for line := range strings.Lines(text) {
		fmt.Fprint(w, indent, strings.TrimSuffix(line, "\n"), "\n")
	}
}

func writeSources(w io.Writer, sources []room.Source) {
	if len(sources) == 0 {
		return
	}
	fmt.Fprintln(w, "    sources:")
	for i, s := range sources {
		fmt.Fprintf(w, "      [%d] %s#%s (score %.3f): %s\n", i+1, s.Document, s.ChunkID, s.Score, oneLine(s.Snippet))
	}
}

// oneLine folds white space runs, newlines included, into single spaces.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// printer prints replayed events.
type printer interface {
	event(ev domain.RecordedEvent) error
	finish() error
}

// deltaPrinter is a printer that prints a chunk's deltas one by one,
// calling between with the time between two deltas' emission before each
// one after the first (replay with timing).
type deltaPrinter interface {
	deltas(ev domain.RecordedEvent, between func(gap time.Duration) error) error
}

func newPrinter(format string, w *bufio.Writer) printer {
	if format == "jsonl" {
		return &jsonlPrinter{w: w}
	}
	return &textPrinter{w: w, streamed: map[domain.UUID]*strings.Builder{}}
}

// eventJSON is an event as `replay --format jsonl` prints it.
type eventJSON struct {
	Stream     string          `json:"stream"`
	Version    int64           `json:"version"`
	Position   domain.Position `json:"position"`
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	RecordedAt time.Time       `json:"recorded_at"`
	Metadata   json.RawMessage `json:"metadata"`
	Data       json.RawMessage `json:"data"`
}

type jsonlPrinter struct{ w *bufio.Writer }

func (p *jsonlPrinter) event(ev domain.RecordedEvent) error {
	line := eventJSON{Stream: ev.Stream, Version: ev.Version, Position: ev.Position, ID: ev.ID.String(), Type: ev.Type,
		RecordedAt: ev.RecordedAt.UTC(), Metadata: compactJSON(ev.Metadata), Data: compactJSON(ev.Data)}
	b, err := json.Marshal(line)
	if err != nil {
		return fmt.Errorf("encode %s@%d: %w", ev.Stream, ev.Version, err)
	}
	b = append(b, '\n')
	_, err = p.w.Write(b)
	return err
}

func (p *jsonlPrinter) finish() error { return p.w.Flush() }

// compactJSON returns b without insignificant white space (stores may
// keep JSON indented, and a JSON line must be one line); null when empty.
func compactJSON(b []byte) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		q, _ := json.Marshal(string(b)) // not JSON: keep it, as a string
		return q
	}
	return buf.Bytes()
}

// textPrinter prints events for people: one header line per event (time,
// version, what happened) and the texts indented below it; answer chunks
// continue their answer's text line as they come.
type textPrinter struct {
	w *bufio.Writer
	// streamed holds the text streamed so far of each answer not ended.
	streamed map[domain.UUID]*strings.Builder
	// lineOpen is the answer whose text line is being written, if any.
	lineOpen    domain.UUID
	hasLineOpen bool
	// headed is the answer whose header line was the last one printed.
	headed    domain.UUID
	hasHeaded bool
}

func (p *textPrinter) endLine() {
	if p.hasLineOpen {
		p.w.WriteString("\n")
		p.hasLineOpen = false
	}
}

func (p *textPrinter) header(ev domain.RecordedEvent, format string, args ...any) {
	p.endLine()
	p.hasHeaded = false
	fmt.Fprintf(p.w, "%s  v%-4d  ", stamp(ev.RecordedAt), ev.Version)
	fmt.Fprintf(p.w, format, args...)
	p.w.WriteString("\n")
}

// chunk continues answer id's text line with delta; after other events
// it says which answer the text continues.
func (p *textPrinter) chunk(ev domain.RecordedEvent, id domain.UUID, delta string) {
	if !p.hasLineOpen || p.lineOpen != id {
		if !p.hasHeaded || p.headed != id {
			p.header(ev, "answer %s continues:", id)
		}
		p.endLine()
		p.w.WriteString("    ")
		p.lineOpen, p.hasLineOpen = id, true
	}
	p.w.WriteString(strings.ReplaceAll(delta, "\n", "\n    "))
	if b := p.streamed[id]; b != nil {
		b.WriteString(delta)
	}
}

// ended closes answer id and reports what had streamed of it.
func (p *textPrinter) ended(id domain.UUID) string {
	b := p.streamed[id]
	delete(p.streamed, id)
	if b == nil {
		return ""
	}
	return b.String()
}

func (p *textPrinter) deltas(ev domain.RecordedEvent, between func(time.Duration) error) error {
	payload, err := room.Decode(ev, true)
	if err != nil {
		return err
	}
	c, ok := payload.(room.AnswerChunk)
	if !ok {
		return p.event(ev)
	}
	var last time.Duration
	for i, d := range c.Deltas() {
		if i > 0 {
			if err := between(d.At - last); err != nil {
				return err
			}
		}
		last = d.At
		p.chunk(ev, c.AnswerID, d.Text)
	}
	return nil
}

func (p *textPrinter) event(ev domain.RecordedEvent) error {
	payload, err := room.Decode(ev, true)
	if err != nil {
		return err
	}
	switch e := payload.(type) {
	case room.RoomCreated:
		p.header(ev, "room %d created by %s: %q", e.RoomID, e.OwnerID, e.Title)
	case room.RoomDeleted:
		p.header(ev, "room deleted by %s", e.DeletedBy)
	case room.RoomErased:
		p.header(ev, "room erased by %s (reason: %s): what was said in it is gone with its key", e.ErasedBy, e.Reason)
	case room.MessagePosted:
		client := ""
		if e.ClientID != "" {
			client = ", client id " + e.ClientID
		}
		p.header(ev, "%s asked (message %s%s):", e.UserID, e.MessageID, client)
		writeIndented(p.w, e.Text, "    ")
	case room.AnswerStarted:
		p.header(ev, "answer %s to message %s started (model %s, instance %s):", e.AnswerID, e.QuestionID, e.Model, e.Instance)
		p.streamed[e.AnswerID] = &strings.Builder{}
		p.headed, p.hasHeaded = e.AnswerID, true
	case room.AnswerChunk:
		p.chunk(ev, e.AnswerID, e.Delta)
	case room.AnswerCompleted:
		streamed := p.ended(e.AnswerID)
		p.header(ev, "answer %s completed (%d chunks)", e.AnswerID, e.Chunks)
		if e.Text != streamed {
			fmt.Fprintln(p.w, "    final text (differs from the chunks above):")
			writeIndented(p.w, e.Text, "      ")
		}
		writeSources(p.w, e.Sources)
	case room.AnswerFailed:
		streamed := p.ended(e.AnswerID)
		p.header(ev, "answer %s failed: %s (%d characters had streamed)", e.AnswerID, e.Reason, len([]rune(e.Text)))
		if e.Text != streamed {
			fmt.Fprintln(p.w, "    text recorded with the failure (differs from the chunks above):")
			writeIndented(p.w, e.Text, "      ")
		}
	case room.AnswerCancelled:
		streamed := p.ended(e.AnswerID)
		p.header(ev, "answer %s cancelled by %s: %s (%d characters had streamed)", e.AnswerID, e.By, e.Reason, len([]rune(e.Text)))
		if e.Text != streamed {
			fmt.Fprintln(p.w, "    text recorded with the cancellation (differs from the chunks above):")
			writeIndented(p.w, e.Text, "      ")
		}
	case room.AuditAccessed:
		p.header(ev, "audit: %s read the room over %s", e.UserID, e.Interface)
	default:
		p.generic(ev)
	}
	return nil
}

// generic prints an event of a type this command does not know, or a
// retrieval record, by its type and data.
func (p *textPrinter) generic(ev domain.RecordedEvent) {
	if ev.Type == typeRetrievalRecorded {
		var rec map[string]any
		if json.Unmarshal(ev.Data, &rec) == nil {
			if id, ok := rec["answer_id"].(string); ok {
				p.header(ev, "retrieval recorded for answer %s:", id)
				fmt.Fprintf(p.w, "    %s\n", compactJSON(ev.Data))
				return
			}
		}
	}
	p.header(ev, "%s:", ev.Type)
	fmt.Fprintf(p.w, "    %s\n", compactJSON(ev.Data))
}

func (p *textPrinter) finish() error {
	p.endLine()
	return p.w.Flush()
}

// typeRetrievalRecorded is the stored type of the retrieval record of an
// answer: the passages it was given, with an answer_id. It is decoded
// generically, so that any version of the record is shown and exported.
const typeRetrievalRecorded = "RetrievalRecorded"
