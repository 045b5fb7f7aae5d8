package wsapi

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/parleychat/parley/domain"
)

// FuzzClientFrame: whatever a client sends, parseClientFrame neither
// panics nor accepts a frame the protocol does not have: an accepted
// frame is a message with text (and a UUID client_id, if any), a cancel
// or a ping; and whatever it accepts, encoding/json reads the same way.
// make chaos runs it for a bounded time; the seeds are the hostile frames
// of issue 17.
func FuzzClientFrame(f *testing.F) {
	for _, s := range []string{
		`{"message":"hi"}`,
		`{"type":"message","message":"hi","client_id":"c7d9e1a2-3b4c-4d5e-8f60-718293a4b5c6"}`,
		`{"type":"cancel"}`, `{"type":"ping"}`,
		`{"type":"ping","Type":"message","message":"stored?"}`,
		`{"Title":"x"}`, `{"message":"a","message":"b"}`,
		`{"message":"a","client_id":"not-a-uuid"}`, `{"message":"a","client_id":"../../etc/passwd"}`,
		`{"message":"a","client_id":"` + strings.Repeat("a", 400) + `"}`,
		`{"message":"\ud800"}`, "{\"message\":\"\xc3\x28\"}", `{"message":null}`, `{"type":5}`,
		`[]`, `null`, `"message"`, `{"message":"a"}{"message":"b"}`, `{"message":"a\u0000b"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cf, err := parseClientFrame(data)
		if err != nil {
			if cf.ClientID != "" {
				if _, perr := domain.ParseUUID(cf.ClientID); perr != nil {
					t.Fatalf("refused frame %q keeps client_id %q, which is no UUID", data, cf.ClientID)
				}
			}
			return
		}
		switch cf.Type {
		case "", "message":
			if cf.Message == nil {
				t.Fatalf("accepted message frame %q without a message", data)
			}
			if cf.ClientID != "" {
				if _, err := domain.ParseUUID(cf.ClientID); err != nil {
					t.Fatalf("accepted client_id %q", cf.ClientID)
				}
			}
		case "cancel", "ping":
		default:
			t.Fatalf("accepted frame type %q", cf.Type)
		}
		var loose clientFrame
		if err := json.Unmarshal(data, &loose); err != nil || loose.Type != cf.Type || loose.ClientID != cf.ClientID ||
			(loose.Message == nil) != (cf.Message == nil) || (loose.Message != nil && *loose.Message != *cf.Message) {
			t.Fatalf("encoding/json reads %q as %+v (%v), the strict decoder as %+v", data, loose, err, cf)
		}
	})
}
