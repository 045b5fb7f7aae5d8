package room

import (
	"time"

	"github.com/parleychat/parley/domain"
)

// TypeAuditAccessed is the stored type of AuditAccessed. It is part of the
// log's format: never rename it.
const TypeAuditAccessed = "AuditAccessed"

// Interfaces an audited read comes through, as AuditAccessed records them.
const (
	InterfaceWebSocket = "websocket"
	InterfaceREST      = "rest"
	InterfaceCLI       = "cli"
)

// AuditAccessed records that someone who does not own the room read it:
// an auditor over the WebSocket or the REST API, or an operator with
// chatctl. It changes nothing in the room: State and History fold it
// harmlessly (it only advances their version) and clients are never sent
// it as a message. Writers append it with an expectation that cannot
// conflict with the room's own writers (domain.StreamExists), so it never
// creates a stream.
type AuditAccessed struct {
	UserID    string    `json:"user_id"`
	Interface string    `json:"interface"`
	At        time.Time `json:"at"`
}

// EventType implements Event.
func (AuditAccessed) EventType() string { return TypeAuditAccessed }

// AuditExpectation is the expectation AuditAccessed is appended with: the
// room's stream must exist, whatever its version.
func AuditExpectation() domain.ExpectedVersion { return domain.StreamExists() }
