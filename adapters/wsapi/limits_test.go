package wsapi_test

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleychat/parley/adapters/wsapi"
)

// closeReason reads until the server closes and returns its code and
// reason.
func closeReason(t *testing.T, c *websocket.Conn) (int, string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			if ce := (*websocket.CloseError)(nil); errors.As(err, &ce) {
				return ce.Code, ce.Text
			}
			t.Fatalf("connection ended without a close frame: %v", err)
		}
	}
}

// TestConnectRates: a user's connection attempts are rate limited before
// the room is looked up, so room ids cannot be probed fast; an address's
// before the token is even checked.
func TestConnectRates(t *testing.T) {
	t.Run("per user", func(t *testing.T) {
		e := newEnv(t, wsapi.Config{ConnectsPerMinute: 60, ConnectBurst: 2})
		var got []int
		for id := range 3 {
			c, _, err := dial(t, e.url+"/ws/chat/"+strconv.Itoa(900+id)+"/?token=user-80", nil)
			if err != nil {
				t.Fatal(err)
			}
			code, reason := closeReason(t, c)
			got = append(got, code)
			if id == 2 && !strings.Contains(reason, "too many connection attempts; retry in 1 s") {
				t.Errorf("refusal reason %q, want when to retry", reason)
			}
		}
		if want := []int{wsapi.CloseForbidden, wsapi.CloseForbidden, wsapi.CloseRateLimited}; !slices.Equal(got, want) {
			t.Errorf("three room probes closed with %v, want %v", got, want)
		}
		// Another user is not affected.
		c, _, _ := dial(t, e.url+"/ws/chat/"+strconv.FormatInt(e.room(t, "81"), 10)+"/?token=user-81", nil)
		if f := read(t, c); f["type"] != "history" {
			t.Errorf("another user's connection: %v, want the history", f)
		}
	})
	t.Run("per address", func(t *testing.T) {
		e := newEnv(t, wsapi.Config{AddrConnectsPerMinute: 60, AddrConnectBurst: 3})
		var got []int
		for i := range 4 {
			c, _, err := dial(t, e.url+"/ws/chat/1/?token=nope-"+strconv.Itoa(i), nil)
			if err != nil {
				t.Fatal(err)
			}
			code, _ := closeReason(t, c)
			got = append(got, code)
		}
		if want := []int{wsapi.CloseUnauthorized, wsapi.CloseUnauthorized, wsapi.CloseUnauthorized, wsapi.CloseRateLimited}; !slices.Equal(got, want) {
			t.Errorf("four attempts from one address closed with %v, want %v (the fourth before its token is checked)", got, want)
		}
	})
}
