package httpapi

import (
	"fmt"
	"math"
	"net/http"
	"strconv"

	"github.com/parleychat/parley/adapters/wire"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/room"
)

// Limits of GET /api/rooms/{id}/messages.
const (
	defaultPageLimit = 50
	maxPageLimit     = 200
)

// errRoomNotFound answers every room the caller may not see: missing,
// deleted or someone else's, so that room ids cannot be probed.
var errRoomNotFound = domain.Errorf(domain.ENOTFOUND, "room not found")

// roomError turns not_found and forbidden into errRoomNotFound, keeping the
// original for the log.
func roomError(err error) error {
	switch domain.ErrorCode(err) {
	case domain.ENOTFOUND, domain.EFORBIDDEN:
		return fmt.Errorf("%w (%v)", errRoomNotFound, err)
	}
	return err
}

// roomID parses the {id} path value: a positive integer in canonical
// form. Anything else is a room that does not exist.
func roomID(r *http.Request) (int64, error) {
	s := r.PathValue("id")
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != s {
		return 0, errRoomNotFound
	}
	return id, nil
}

// roomJSON is a room as the API shows it.
type roomJSON struct {
	ID        int64  `json:"id"`
	Title     string `json:"title"`
	OwnerID   string `json:"owner_id"`
	CreatedAt string `json:"created_at"`
	Version   int64  `json:"version"`
}

func roomInfoJSON(ri chat.RoomInfo) roomJSON {
	return roomJSON{ID: ri.ID, Title: ri.Title, OwnerID: ri.Owner, CreatedAt: wire.Time(ri.CreatedAt), Version: ri.Version}
}

// handleCreateRoom serves POST /api/rooms: {"title"} creates a room owned
// by the caller; 201 with the room and its Location.
func handleCreateRoom(rooms Rooms, maxBody int64) http.Handler {
	type request struct {
		Title string `json:"title"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req request
		if err := decodeJSON(w, r, maxBody, &req); err != nil {
			writeError(w, r, err)
			return
		}
		info, err := rooms.CreateRoom(r.Context(), principalFrom(r.Context()).UserID, req.Title)
		if err != nil {
			writeError(w, r, err)
			return
		}
		w.Header().Set("Location", "/api/rooms/"+strconv.FormatInt(info.ID, 10))
		writeJSON(w, http.StatusCreated, roomInfoJSON(info))
	})
}

// handleListRooms serves GET /api/rooms: the caller's rooms, newest first.
func handleListRooms(lister RoomLister, limit int) http.Handler {
	type response struct {
		Rooms []roomJSON `json:"rooms"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		list, err := lister.RoomsOf(r.Context(), principalFrom(r.Context()).UserID, limit)
		if err != nil {
			writeError(w, r, err)
			return
		}
		out := response{Rooms: make([]roomJSON, len(list))}
		for i, rs := range list {
			out.Rooms[i] = roomJSON{ID: rs.ID, Title: rs.Title, OwnerID: rs.OwnerID, CreatedAt: wire.Time(rs.CreatedAt), Version: rs.Version}
		}
		writeJSON(w, http.StatusOK, out)
	})
}

// handleGetRoom serves GET /api/rooms/{id}: the room as its stream tells
// it; 404 unless it exists and is the caller's.
func handleGetRoom(rooms Rooms) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := roomID(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		info, err := rooms.Room(r.Context(), id, principalFrom(r.Context()).UserID)
		if err != nil {
			writeError(w, r, roomError(err))
			return
		}
		writeJSON(w, http.StatusOK, roomInfoJSON(info))
	})
}

// handleDeleteRoom serves DELETE /api/rooms/{id}: 204 once the room is
// deleted, which chatd makes an erasure (chat.Service.Delete: the room's
// key is destroyed and its text gone for good); 404 unless it exists, is
// not deleted and is the caller's.
func handleDeleteRoom(rooms Rooms) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := roomID(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if err := rooms.Delete(r.Context(), id, principalFrom(r.Context()).UserID); err != nil {
			writeError(w, r, roomError(err))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// handleListMessages serves GET /api/rooms/{id}/messages?before=&limit=:
// a page of the room's messages, newest first, whose version is less than
// before (all when absent); limit 1-200, default 50. next_before is the
// version of the page's last (oldest) message when older ones exist, else
// null: pass it as before for the next page.
func handleListMessages(rooms Rooms, pager MessagePager) http.Handler {
	type response struct {
		Messages   []wire.Message `json:"messages"`
		NextBefore *int64         `json:"next_before"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := roomID(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		q := r.URL.Query()
		before := int64(math.MaxInt64)
		if s := q.Get("before"); s != "" {
			if before, err = strconv.ParseInt(s, 10, 64); err != nil || before < 0 {
				writeError(w, r, domain.Errorf(domain.EINVALID, "before must be a non-negative integer (a stream version)"))
				return
			}
		}
		limit := defaultPageLimit
		if s := q.Get("limit"); s != "" {
			if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > maxPageLimit {
				writeError(w, r, domain.Errorf(domain.EINVALID, "limit must be an integer from 1 to %d", maxPageLimit))
				return
			}
		}
		if _, err := rooms.Room(r.Context(), id, principalFrom(r.Context()).UserID); err != nil {
			writeError(w, r, roomError(err))
			return
		}
		var msgs []room.Message
		if before > 0 { // before=0: nothing is below version 0 (RoomCreated)
			if msgs, err = pager.Messages(r.Context(), id, before, limit+1); err != nil {
				writeError(w, r, err)
				return
			}
		}
		var out response
		if len(msgs) > limit {
			msgs = msgs[:limit]
			next := msgs[limit-1].Version
			out.NextBefore = &next
		}
		out.Messages = wire.Messages(msgs) // the objects of the WebSocket history frame
		writeJSON(w, http.StatusOK, out)
	})
}

// handleCreateTicket serves POST /api/rooms/{id}/ticket: a single-use
// WebSocket ticket for the room, for its owner only (404 for others).
func handleCreateTicket(rooms Rooms, tickets TicketIssuer) http.Handler {
	type response struct {
		Ticket    string `json:"ticket"`
		ExpiresAt string `json:"expires_at"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := roomID(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		p := principalFrom(r.Context())
		if _, err := rooms.Room(r.Context(), id, p.UserID); err != nil {
			writeError(w, r, roomError(err))
			return
		}
		ticket, expires, err := tickets.Issue(r.Context(), p, id)
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusCreated, response{Ticket: ticket, ExpiresAt: wire.Time(expires)})
	})
}
