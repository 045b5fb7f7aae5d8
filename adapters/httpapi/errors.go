package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/parleychat/parley/adapters/strictjson"
	"github.com/parleychat/parley/domain"
)

// statusOf maps a domain error code to the HTTP status that answers it.
// Room handlers turn forbidden into not_found before (see roomError).
func statusOf(code string) int {
	switch code {
	case domain.EINVALID:
		return http.StatusBadRequest
	case domain.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case domain.EFORBIDDEN:
		return http.StatusForbidden
	case domain.ENOTFOUND:
		return http.StatusNotFound
	case domain.ECONFLICT, domain.EBUSY:
		return http.StatusConflict
	case domain.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case domain.ERATELIMITED:
		return http.StatusTooManyRequests
	case domain.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error errorJSON `json:"error"`
}

type errorJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// internalMessage is all a client learns of an internal error.
const internalMessage = "internal error"

// writeError answers err with the status its code maps to and
// {"error":{"code","message"}}, and hands err to the access log, which
// logs it once. An internal error's detail stays in the log.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := domain.ErrorCode(err)
	msg := domain.ErrorMessage(err)
	if code == domain.EINTERNAL || msg == "" {
		msg = internalMessage
	}
	writeErrorStatus(w, r, statusOf(code), code, msg, err)
}

func writeErrorStatus(w http.ResponseWriter, r *http.Request, status int, code, msg string, err error) {
	if ri := infoFrom(r.Context()); ri != nil && ri.err == nil {
		ri.err = err
	}
	if status == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	writeJSON(w, status, errorBody{Error: errorJSON{Code: code, Message: msg}})
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// An encoding error here is a bug in our own types or a client gone
	// away; the status is sent already, so there is nothing to answer.
	_ = json.NewEncoder(w).Encode(v)
}

// decodeJSON reads the request body, at most maxBytes of it, into v. The
// body must be one JSON object that strictjson accepts: valid UTF-8, keys
// spelt exactly as v's fields, none unknown and none twice. A
// Content-Type, when present, must be application/json.
func decodeJSON(w http.ResponseWriter, r *http.Request, maxBytes int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return domain.Errorf(domain.EINVALID, "Content-Type must be application/json")
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBytes))
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		return domain.Errorf(domain.ETOOLARGE, "request body over %d bytes", mbe.Limit)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", domain.Errorf(domain.EINVALID, "could not read the request body"), err)
	}
	if err := strictjson.DecodeObject(body, v); err != nil {
		return domain.Errorf(domain.EINVALID, "invalid JSON body: %s", err)
	}
	return nil
}
