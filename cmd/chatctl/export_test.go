package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/inmem"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

func exportFixed(t *testing.T, s *inmem.Store, c *clock, progress io.Writer, args ...string) (string, error) {
	t.Helper()
	o, err := parseExport(append([]string{"--operator", "ops-1"}, args...), env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	var out bytes.Buffer
	x := &exporter{store: s, now: c.Now, random: &countingReader{}, progress: progress}
	err = x.export(t.Context(), o, &out)
	return out.String(), err
}

func TestExportGolden(t *testing.T) {
	for _, format := range []string{"jsonl", "md"} {
		t.Run(format, func(t *testing.T) {
			s, c := fixedStore(t)
			got, err := exportFixed(t, s, c, nil, "--room", "7", "--format", format)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "export."+format+".golden", got)
		})
	}
}

// TestExportAttachesRetrievals checks the jsonl export's content: the
// answer carries its sources and its retrieval record, the audit and the
// unknown event are kept, and the export's own read is not in it but in
// the stream.
func TestExportAttachesRetrievals(t *testing.T) {
	s, c := fixedStore(t)
	// A retrieval record of no answer of the room goes with the others.
	c.set(t0.Add(23 * time.Hour))
	if _, err := s.Append(t.Context(), room.Stream(fixedRoom), domain.Any(), domain.EventData{ID: fixedID(500), Type: typeRetrievalRecorded,
		Data: []byte(`{"answer_id":"` + fixedID(999).String() + `","passages":[]}`)}); err != nil {
		t.Fatal(err)
	}
	c.set(t0.Add(24 * time.Hour))
	got, err := exportFixed(t, s, c, nil, "--room", "7")
	if err != nil {
		t.Fatal(err)
	}
	var rec exportedRoom
	if err := json.Unmarshal([]byte(got), &rec); err != nil {
		t.Fatalf("export is not one JSON object: %v\n%s", err, got)
	}
	if len(rec.Messages) != 6 {
		t.Fatalf("%d messages, want 6", len(rec.Messages))
	}
	a := rec.Messages[1]
	if a.ID != ans1.String() || a.Status != room.StatusComplete || a.Model != "offline/extractive" || a.QuestionID != msg1.String() ||
		len(a.Sources) != 1 || a.Sources[0].ChunkID != "c3" || len(a.Retrievals) != 1 || !strings.Contains(string(a.Retrievals[0]), `"query":"youth housing allowance"`) {
		t.Errorf("first answer %+v", a)
	}
	if f, cn := rec.Messages[3], rec.Messages[5]; f.EndReason != room.ReasonGeneratorError || f.Status != room.StatusFailed ||
		cn.CancelledBy != "42" || cn.Status != room.StatusCancelled || len(f.Retrievals) != 0 {
		t.Errorf("failed %+v, cancelled %+v", f, cn)
	}
	if u := rec.Messages[0]; u.UserID != "42" || u.ClientID != "c-1" || u.Sources != nil {
		t.Errorf("question %+v", u)
	}
	var others []string
	for _, o := range rec.OtherEvents {
		others = append(others, o.Type)
	}
	if diff := cmp.Diff([]string{"SummaryRecorded", typeRetrievalRecorded}, others); diff != "" {
		t.Errorf("other events (-want +got):\n%s", diff)
	}
	if len(rec.AuditAccesses) != 1 || rec.AuditAccesses[0].UserID != "auditor-9" || rec.Deleted == nil || rec.Deleted.By != "42" {
		t.Errorf("audits %+v, deleted %+v", rec.AuditAccesses, rec.Deleted)
	}
	evs, _ := s.ReadStream(t.Context(), room.Stream(fixedRoom), domain.ReadStreamOptions{From: rec.Version + 1})
	if len(evs) != 1 || evs[0].Type != room.TypeAuditAccessed || !strings.Contains(string(evs[0].Data), `"interface":"cli"`) {
		t.Errorf("after the exported version: %v, want the export's own AuditAccessed", evs)
	}
}

func TestExportUser(t *testing.T) {
	c := &clock{now: t0}
	s := inmem.New(c.Now)
	writeConversation(t, s, c, fixedRoom)
	create := func(id int64, owner string) {
		b, _ := json.Marshal(room.RoomCreated{RoomID: id, OwnerID: owner, Title: "Room"})
		if _, err := s.Append(t.Context(), room.Stream(id), domain.NoStream(), domain.EventData{ID: fixedID(int(1000 + id)), Type: room.TypeRoomCreated, Data: b}); err != nil {
			t.Fatal(err)
		}
	}
	create(8, "43")
	create(9, "42")
	// Not a room stream, though it has the prefix.
	if _, err := s.Append(t.Context(), "room-x", domain.Any(), domain.EventData{ID: fixedID(2000), Type: room.TypeRoomCreated, Data: []byte(`{"owner_id":"42"}`)}); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"jsonl", "md"} {
		got, err := exportFixed(t, s, c, nil, "--user", "42", "--format", format)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		if format == "jsonl" {
			for line := range strings.Lines(got) {
				var r exportedRoom
				if err := json.Unmarshal([]byte(line), &r); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, r.RoomID)
			}
		} else {
			for _, id := range []int64{7, 8, 9} {
				if strings.Contains(got, "# Room "+string(rune('0'+id))+":") {
					ids = append(ids, id)
				}
			}
		}
		if diff := cmp.Diff([]int64{7, 9}, ids); diff != "" {
			t.Errorf("%s: rooms exported (-want +got):\n%s", format, diff)
		}
	}
	if _, err := exportFixed(t, s, c, nil, "--user", "nobody"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("user without rooms: %v, want not_found", err)
	}
}

func TestWriteFileAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.jsonl")
	if err := os.WriteFile(path, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := writeFileAtomically(path, func(w io.Writer) error { io.WriteString(w, "half"); return boom }); !errors.Is(err, boom) {
		t.Errorf("error %v, want boom", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old\n" {
		t.Errorf("after a failed export the file holds %q, want the old content", b)
	}
	if err := writeFileAtomically(path, func(w io.Writer) error { _, err := io.WriteString(w, "new\n"); return err }); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "new\n" {
		t.Errorf("file holds %q, want new", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files in the directory, want 1 (no temporary left)", len(entries))
	}
}

func TestParseExportRefusals(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--operator", "x"}, "say what to export"},
		{[]string{"--operator", "x", "--room", "1", "--user", "2"}, "exclude each other"},
		{[]string{"--operator", "x", "--room", "1", "--format", "csv"}, `--format "csv"`},
		{[]string{"--room", "1"}, "cannot tell who is reading"},
	}
	for _, tc := range tests {
		if _, err := parseExport(tc.args, env(nil), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.want)
		}
	}
}
