// Package userlimit keeps a token bucket (golang.org/x/time/rate) per
// user: the WebSocket gateway limits messages with it, the REST API
// requests.
package userlimit
