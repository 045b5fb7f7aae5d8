package httpapi

import (
	"context"
	"net/http"

	"github.com/parleychat/parley/domain"
)

// UserEraser erases every room of a user (chat.Service.EraseUser, by the
// user, reason room.ErasedByOwner).
type UserEraser interface {
	EraseMine(ctx context.Context, user string) ([]int64, error)
}

// eraseJSON is POST /api/me/erase's answer.
type eraseJSON struct {
	// Erased are the rooms erased by this request; rooms erased before
	// are not listed, so a repeated request answers an empty list.
	Erased []int64 `json:"erased"`
}

// handleEraseMe serves POST /api/me/erase: every room of the caller,
// deleted ones included, is erased (its key destroyed, RoomErased
// appended); 200 with the ids erased now. Nothing to erase is not an error.
func handleEraseMe(eraser UserEraser) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if eraser == nil {
			writeError(w, r, domain.Errorf(domain.ENOTFOUND, "erasure is not configured on this server"))
			return
		}
		ids, err := eraser.EraseMine(r.Context(), principalFrom(r.Context()).UserID)
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, eraseJSON{Erased: ids})
	})
}
