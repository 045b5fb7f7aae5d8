package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/httpapi"
	"github.com/parleychat/parley/domain"
)

// fakeEraser erases by user from a fixed list, once each.
type fakeEraser struct {
	rooms map[string][]int64
	err   error
}

func (f *fakeEraser) EraseMine(_ context.Context, user string) ([]int64, error) {
	if f.err != nil {
		return nil, f.err
	}
	ids := f.rooms[user]
	delete(f.rooms, user)
	if ids == nil {
		ids = []int64{}
	}
	return ids, nil
}

func TestEraseMe(t *testing.T) {
	er := &fakeEraser{rooms: map[string][]int64{"alice": {3, 5}, "bob": {7}}}
	f := newFixture(t, func(_ *httpapi.Config, d *httpapi.Deps) { d.Erasure = er })
	for _, tc := range []struct {
		name   string
		token  string
		status int
		erased []int64
	}{
		{"no token", "", 401, nil},
		{"alice", aliceToken, 200, []int64{3, 5}},
		{"alice again", aliceToken, 200, []int64{}},
	} {
		resp := f.do(t, request{method: "POST", path: "/api/me/erase", token: tc.token})
		if resp.status != tc.status {
			t.Fatalf("%s: status %d, body %s; want %d", tc.name, resp.status, resp.body, tc.status)
		}
		if tc.status != 200 {
			continue
		}
		var got struct{ Erased []int64 }
		if err := json.Unmarshal(resp.body, &got); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.erased, got.Erased); diff != "" {
			t.Errorf("%s: erased (-want +got):\n%s", tc.name, diff)
		}
	}
	if len(er.rooms["bob"]) != 1 {
		t.Errorf("alice's request erased bob's rooms")
	}
	er.err = errors.Join(domain.Errorf(domain.EUNAVAILABLE, "keys down"))
	if resp := f.do(t, request{method: "POST", path: "/api/me/erase", token: bobToken}); resp.status != 503 {
		t.Errorf("key store down: status %d, want 503", resp.status)
	}
}
