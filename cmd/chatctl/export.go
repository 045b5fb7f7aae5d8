package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/parleychat/parley/cmd/internal/cli"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

const exportUsage = `usage: chatctl export (--room N | --user ID) [--format jsonl|md] [--out FILE] [--operator NAME]

Exports the full history of one room, or of every room a user created
(deleted ones included), from the event stream: each message with its
status, each answer with its model, the sources it used and its retrieval
records (RetrievalRecorded events with its answer_id), the room's audit
accesses, and any event of another type.

Each room's read is recorded in its stream as an AuditAccessed event
(interface cli, user --operator); the export shows the stream up to just
before that record.

  --format jsonl   one JSON object per room, one a line (default)
  --format md      a Markdown document per room
  --out FILE       write to FILE (replaced only once the export is complete)
                   instead of standard output
  --user ID        finds the user's rooms by scanning the log's RoomCreated
                   events, with progress on standard error

` + readerEnvironment

// exportOptions is a parsed `chatctl export` command line.
type exportOptions struct {
	roomID   int64
	user     string
	format   string // "jsonl" or "md"
	out      string
	operator string
}

func parseExport(args []string, getenv func(string) string, stdout io.Writer) (exportOptions, error) {
	fs := cli.NewFlagSet("export")
	roomID := fs.Int64("room", 0, "id of the room to export")
	user := fs.String("user", "", "export every room this user created")
	format := fs.String("format", "jsonl", "jsonl or md")
	out := fs.String("out", "", "file to write (default: standard output)")
	operator := fs.String("operator", "", "who is reading, recorded in each room's stream (default $PARLEY_OPERATOR, else $USER)")
	if err := cli.Parse(fs, args, "chatctl export", exportUsage, stdout); err != nil {
		return exportOptions{}, err
	}
	o := exportOptions{roomID: *roomID, user: strings.TrimSpace(*user), format: *format, out: *out}
	var problems []string
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected argument %q (everything is a flag; see chatctl export --help)", fs.Arg(0)))
	}
	switch {
	case o.roomID < 0:
		problems = append(problems, "--room must be a positive integer")
	case o.roomID == 0 && o.user == "":
		problems = append(problems, "say what to export: --room N (one room) or --user ID (every room of a user)")
	case o.roomID > 0 && o.user != "":
		problems = append(problems, "--room and --user exclude each other: export one room or one user's rooms")
	}
	if o.format != "jsonl" && o.format != "md" {
		problems = append(problems, fmt.Sprintf("--format %q: want jsonl or md", o.format))
	}
	var err error
	if o.operator, err = operatorName(*operator, getenv); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return exportOptions{}, cli.Usage(errors.New("export: " + strings.Join(problems, "\nexport: ")))
	}
	return o, nil
}

// runExport implements `chatctl export`.
func runExport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseExport(args, getenv, stdout)
	if err != nil {
		return helpOK(err)
	}
	store, _, closeStore, err := openRoomLog(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer closeStore()
	x := &exporter{store: store, now: time.Now, random: rand.Reader, progress: stderr}
	if o.out == "" {
		return x.export(ctx, o, stdout)
	}
	return writeFileAtomically(o.out, func(w io.Writer) error { return x.export(ctx, o, w) })
}

// writeFileAtomically writes path through a temporary file beside it,
// renamed over path only when write succeeds, so a failed export never
// leaves a truncated file behind.
func writeFileAtomically(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("export: create %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // fails harmlessly once renamed
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("export: write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("export: write %s: %w", path, err)
	}
	return nil
}

// exportStore is what an export needs of the event store.
type exportStore interface {
	domain.Appender
	domain.StreamReader
	domain.AllReader
}

// exporter exports rooms; its clock and randomness are injected for tests,
// and progress (standard error) gets the progress of --user exports.
type exporter struct {
	store    exportStore
	now      func() time.Time
	random   io.Reader
	progress io.Writer
}

func (x *exporter) export(ctx context.Context, o exportOptions, out io.Writer) error {
	ids := []int64{o.roomID}
	if o.user != "" {
		var err error
		if ids, err = roomsCreatedBy(ctx, x.store, o.user, newProgress(x.progress, "scan the log for the user's rooms", "events", 0)); err != nil {
			return fmt.Errorf("export: find the rooms of %s: %w", o.user, err)
		}
		if len(ids) == 0 {
			return domain.Errorf(domain.ENOTFOUND, "user %s created no rooms", o.user)
		}
	}
	w := bufio.NewWriter(out)
	prog := newProgress(x.progress, "export rooms", "rooms", int64(len(ids)))
	for i, id := range ids {
		upto, err := recordCLIAccess(ctx, x.store, id, o.operator, x.now, x.random)
		if err != nil {
			return fmt.Errorf("export room %d: %w", id, err)
		}
		rec, err := buildExport(ctx, x.store, id, upto)
		if err != nil {
			return fmt.Errorf("export room %d: %w", id, err)
		}
		if o.format == "md" {
			if i > 0 {
				w.WriteString("\n---\n\n")
			}
			writeMarkdown(w, rec)
		} else {
			enc := json.NewEncoder(w)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(rec); err != nil {
				return fmt.Errorf("export room %d: %w", id, err)
			}
		}
		if len(ids) > 1 {
			prog.update(int64(i+1), "")
		}
	}
	if len(ids) > 1 {
		prog.finish()
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("export: write: %w", err)
	}
	return nil
}

// roomsCreatedBy scans the log's room streams for RoomCreated events of
// owner and returns their room ids in the order they were created.
func roomsCreatedBy(ctx context.Context, s domain.AllReader, owner string, prog *progress) ([]int64, error) {
	var ids []int64
	_, err := scanRoomEvents(ctx, s, func(_ int64, ev domain.RecordedEvent) error {
		if ev.Type != room.TypeRoomCreated {
			return nil
		}
		p, err := room.Decode(ev, false)
		if err != nil {
			return err
		}
		if c := p.(room.RoomCreated); c.OwnerID == owner {
			ids = append(ids, c.RoomID)
		}
		return nil
	}, func(read int) { prog.update(int64(read), fmt.Sprintf("%d rooms found", len(ids))) })
	prog.finish()
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// exportedRoom is one room as export writes it.
type exportedRoom struct {
	RoomID    int64     `json:"room_id"`
	Title     string    `json:"title"`
	OwnerID   string    `json:"owner_id"`
	CreatedAt time.Time `json:"created_at"`
	// Deleted is set when the room was deleted.
	Deleted *deletion `json:"deleted,omitempty"`
	// Erased is set when the room was erased: its text is gone.
	Erased *erasure `json:"erased,omitempty"`
	// Version is the last stream version exported.
	Version       int64                `json:"version"`
	Messages      []exportedMessage    `json:"messages"`
	AuditAccesses []room.AuditAccessed `json:"audit_accesses"`
	// OtherEvents are events of types export does not know, and retrieval
	// records of no message in the room.
	OtherEvents []otherEvent `json:"other_events,omitempty"`
}

type deletion struct {
	By string    `json:"by"`
	At time.Time `json:"at"`
}

type erasure struct {
	By     string    `json:"by"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// exportedMessage is a question or an answer.
type exportedMessage struct {
	ID        string    `json:"id"`
	Role      string    `json:"role"`
	UserID    string    `json:"user_id,omitempty"`
	Text      string    `json:"text"`
	Status    string    `json:"status"`
	ClientID  string    `json:"client_id,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Version   int64     `json:"version"`
	// Answers only.
	QuestionID  string        `json:"question_id,omitempty"`
	Model       string        `json:"model,omitempty"`
	Instance    string        `json:"instance,omitempty"`
	Chunks      int           `json:"chunks,omitempty"` // the deltas its AnswerChunk events carry
	EndReason   string        `json:"end_reason,omitempty"`
	CancelledBy string        `json:"cancelled_by,omitempty"`
	Sources     []room.Source `json:"sources,omitempty"`
	// Retrievals are the answer's RetrievalRecorded events' data, as
	// stored.
	Retrievals []json.RawMessage `json:"retrievals,omitempty"`
}

type otherEvent struct {
	Version    int64           `json:"version"`
	Type       string          `json:"type"`
	RecordedAt time.Time       `json:"recorded_at"`
	Data       json.RawMessage `json:"data"`
}

// buildExport reads room id's stream up to version upto and assembles its
// export: the History fold's messages with what else the events say.
func buildExport(ctx context.Context, s domain.StreamReader, id, upto int64) (*exportedRoom, error) {
	h := room.NewHistory()
	rec := &exportedRoom{RoomID: id, AuditAccesses: []room.AuditAccessed{}, Version: domain.NoVersion}
	extra := map[domain.UUID]*exportedMessage{}
	get := func(id domain.UUID) *exportedMessage {
		m := extra[id]
		if m == nil {
			m = &exportedMessage{}
			extra[id] = m
		}
		return m
	}
	type retrieval struct {
		answer string
		ev     domain.RecordedEvent
	}
	var retrievals []retrieval
	err := readStream(ctx, s, id, 0, upto, func(ev domain.RecordedEvent) error {
		if err := h.Apply(ev); err != nil {
			return err
		}
		rec.Version = ev.Version
		if ev.Type == typeRetrievalRecorded {
			// Decoded generically, whatever the record's version holds.
			var fields map[string]any
			if json.Unmarshal(ev.Data, &fields) == nil {
				if a, ok := fields["answer_id"].(string); ok {
					retrievals = append(retrievals, retrieval{answer: a, ev: ev})
					return nil
				}
			}
		}
		p, err := room.Decode(ev, true)
		if err != nil {
			return err
		}
		switch e := p.(type) {
		case room.RoomCreated:
			rec.Title, rec.OwnerID, rec.CreatedAt = e.Title, e.OwnerID, ev.RecordedAt.UTC()
		case room.RoomDeleted:
			rec.Deleted = &deletion{By: e.DeletedBy, At: ev.RecordedAt.UTC()}
		case room.RoomErased:
			rec.Erased = &erasure{By: e.ErasedBy, Reason: e.Reason, At: ev.RecordedAt.UTC()}
		case room.MessagePosted:
			get(e.MessageID).UserID = e.UserID
		case room.AnswerStarted:
			m := get(e.AnswerID)
			m.QuestionID, m.Model, m.Instance = e.QuestionID.String(), e.Model, e.Instance
		case room.AnswerChunk:
			get(e.AnswerID).Chunks += e.Count()
		case room.AnswerCompleted:
			// Its text, status and sources are in the History fold.
		case room.AnswerFailed:
			get(e.AnswerID).EndReason = e.Reason
		case room.AnswerCancelled:
			m := get(e.AnswerID)
			m.EndReason, m.CancelledBy = e.Reason, e.By
		case room.AuditAccessed:
			e.At = e.At.UTC()
			rec.AuditAccesses = append(rec.AuditAccesses, e)
		default: // types export does not know, typed or not
			rec.OtherEvents = append(rec.OtherEvents, otherEvent{Version: ev.Version, Type: ev.Type, RecordedAt: ev.RecordedAt.UTC(), Data: compactJSON(ev.Data)})
		}
		return nil
	})
	if errors.Is(err, domain.ErrStreamNotFound) {
		return nil, domain.Errorf(domain.ENOTFOUND, "room %d does not exist", id)
	}
	if err != nil {
		return nil, err
	}
	index := map[string]int{}
	rec.Messages = make([]exportedMessage, len(h.Messages))
	for i, m := range h.Messages {
		x := exportedMessage{}
		if e := extra[m.ID]; e != nil {
			x = *e
		}
		x.ID, x.Role, x.Text, x.Status, x.ClientID = m.ID.String(), m.Role, m.Text, m.Status, m.ClientID
		x.CreatedAt, x.UpdatedAt, x.Version = m.CreatedAt.UTC(), m.UpdatedAt.UTC(), m.Version
		if m.Role == room.RoleAssistant {
			x.Sources = m.Sources
			if x.Sources == nil {
				x.Sources = []room.Source{}
			}
		}
		rec.Messages[i] = x
		index[x.ID] = i
	}
	for _, r := range retrievals {
		i, ok := index[strings.ToLower(r.answer)]
		if !ok || rec.Messages[i].Role != room.RoleAssistant {
			ev := r.ev
			rec.OtherEvents = append(rec.OtherEvents, otherEvent{Version: ev.Version, Type: ev.Type, RecordedAt: ev.RecordedAt.UTC(), Data: compactJSON(ev.Data)})
			continue
		}
		rec.Messages[i].Retrievals = append(rec.Messages[i].Retrievals, compactJSON(r.ev.Data))
	}
	return rec, nil
}

// writeMarkdown writes one room as a Markdown document.
func writeMarkdown(w *bufio.Writer, r *exportedRoom) {
	fmt.Fprintf(w, "# Room %d: %s\n\n", r.RoomID, mdEscape(r.Title))
	fmt.Fprintf(w, "- owner: %s\n- created: %s\n", mdEscape(r.OwnerID), stamp(r.CreatedAt))
	if r.Deleted != nil {
		fmt.Fprintf(w, "- deleted: %s by %s\n", stamp(r.Deleted.At), mdEscape(r.Deleted.By))
	}
	fmt.Fprintf(w, "- exported up to stream version %d\n", r.Version)
	for _, m := range r.Messages {
		w.WriteString("\n")
		if m.Role == room.RoleUser {
			fmt.Fprintf(w, "## %s: %s asked\n\n", stamp(m.CreatedAt), mdEscape(m.UserID))
			writeQuoted(w, m.Text)
			fmt.Fprintf(w, "\n<sub>message %s, version %d</sub>\n", m.ID, m.Version)
			continue
		}
		status := m.Status
		switch {
		case m.CancelledBy != "":
			status += " by " + mdEscape(m.CancelledBy) + " (" + m.EndReason + ")"
		case m.EndReason != "":
			status += " (" + m.EndReason + ")"
		}
		fmt.Fprintf(w, "## %s: answer, %s\n\n", stamp(m.CreatedAt), status)
		if m.Text != "" {
			w.WriteString(strings.TrimRight(m.Text, "\n"))
			w.WriteString("\n")
		} else {
			w.WriteString("*(no text)*\n")
		}
		fmt.Fprintf(w, "\n<sub>answer %s to message %s, model %s, instance %s, chunks: %d, last changed %s at version %d</sub>\n",
			m.ID, m.QuestionID, mdEscape(m.Model), mdEscape(m.Instance), m.Chunks, stamp(m.UpdatedAt), m.Version)
		if len(m.Sources) > 0 {
			w.WriteString("\n**Sources**\n\n")
			for i, s := range m.Sources {
				fmt.Fprintf(w, "%d. %s, chunk %s (score %.3f): %s\n", i+1, mdEscape(s.Document), mdEscape(s.ChunkID), s.Score, mdEscape(oneLine(s.Snippet)))
			}
		}
		for _, rr := range m.Retrievals {
			w.WriteString("\n**Retrieval record**\n\n")
			writeJSONBlock(w, rr)
		}
	}
	if len(r.AuditAccesses) > 0 {
		w.WriteString("\n## Audit accesses\n\n")
		for _, a := range r.AuditAccesses {
			fmt.Fprintf(w, "- %s: %s over %s\n", stamp(a.At), mdEscape(a.UserID), a.Interface)
		}
	}
	if len(r.OtherEvents) > 0 {
		w.WriteString("\n## Other events\n")
		for _, e := range r.OtherEvents {
			fmt.Fprintf(w, "\n%s, version %d: %s\n\n", stamp(e.RecordedAt), e.Version, mdEscape(e.Type))
			writeJSONBlock(w, e.Data)
		}
	}
}

// writeQuoted writes text as a Markdown block quote.
func writeQuoted(w *bufio.Writer, text string) {
	for line := range strings.Lines(strings.TrimRight(text, "\n")) {
		w.WriteString("> ")
		w.WriteString(strings.TrimSuffix(line, "\n"))
		w.WriteString("\n")
	}
}

// writeJSONBlock writes JSON indented in a fenced block whose fence is
// longer than any backtick run inside it.
func writeJSONBlock(w *bufio.Writer, raw json.RawMessage) {
	b := []byte(raw)
	var ind bytes.Buffer
	if json.Indent(&ind, raw, "", "  ") == nil {
		b = ind.Bytes()
	}
	fence := "```"
	for strings.Contains(string(b), fence) {
		fence += "`"
	}
	fmt.Fprintf(w, "%sjson\n%s\n%s\n", fence, b, fence)
}

// mdEscape keeps a one-line value from being read as Markdown markup.
func mdEscape(s string) string {
	var b strings.Builder
	for _, r := range oneLine(s) {
		if strings.ContainsRune("\\`*_[]<>|", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
