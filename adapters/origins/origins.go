// Package origins decides which browser origins may use Parley: the one
// allow-list that both the WebSocket gateway's Origin check and the REST
// API's CORS answers consult, so the two can never disagree.
package origins

import (
	"fmt"
	"net/url"
	"strings"
)

// Wildcard, as the only entry or among others, allows every origin.
const Wildcard = "*"

// List is a parsed allow-list of browser origins: each entry
// scheme://host[:port] in lower case, or Wildcard. The zero List allows no
// cross-origin browser at all (pages served by the server itself still
// pass Check: see SameOrigin).
type List struct {
	entries []string
	any     bool
}

// Parse validates an allow-list, as PARLEY_ALLOWED_ORIGINS spells it: each
// entry an origin such as https://app.example or http://localhost:5173
// (no path, query or user), or "*". It reports every bad entry.
func Parse(entries []string) (List, error) {
	var l List
	var bad []string
	for _, e := range entries {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
			continue
		case e == Wildcard:
			l.any = true
			continue
		}
		norm, ok := normalize(strings.TrimRight(e, "/"))
		if !ok {
			bad = append(bad, fmt.Sprintf("%q", e))
			continue
		}
		l.entries = append(l.entries, norm)
	}
	if len(bad) > 0 {
		return List{}, fmt.Errorf("%s: an allowed origin is scheme://host[:port] (like https://app.example), or *", strings.Join(bad, ", "))
	}
	return l, nil
}

// MustParse is Parse for lists known to be good (tests, constants); it
// panics on a bad entry.
func MustParse(entries ...string) List {
	l, err := Parse(entries)
	if err != nil {
		panic("origins: " + err.Error())
	}
	return l
}

// Allows reports whether the allow-list names origin (the value of a
// request's Origin header). "null" and malformed origins are allowed only
// by the wildcard.
func (l List) Allows(origin string) bool {
	if l.any {
		return origin != ""
	}
	norm, ok := normalize(origin)
	if !ok {
		return false
	}
	for _, e := range l.entries {
		if e == norm {
			return true
		}
	}
	return false
}

// Wildcard reports whether the list allows every origin.
func (l List) Wildcard() bool { return l.any }

// SameOrigin reports whether origin names the host the request was sent to
// (host is the request's Host header): a page the server served itself.
// Only the host and port are compared, as gorilla/websocket's default
// check does: behind a TLS-terminating proxy the scheme the server sees is
// not the browser's.
func SameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, host)
}

// Check is the rule every browser-facing endpoint applies: a request
// without an Origin header (not a browser, or a same-origin GET) passes, a
// page served by this server passes, and anything else must be on the
// allow-list.
func (l List) Check(origin, host string) bool {
	return origin == "" || SameOrigin(origin, host) || l.Allows(origin)
}

// normalize returns origin as scheme://host[:port] in lower case, and
// whether it is one.
func normalize(origin string) (string, bool) {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", false
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), true
}

// String lists the allowed origins, comma-separated, as
// PARLEY_ALLOWED_ORIGINS would spell them.
func (l List) String() string {
	all := l.entries
	if l.any {
		all = append([]string{Wildcard}, all...)
	}
	return strings.Join(all, ",")
}
