// Package docs holds Parley's API documents and embeds them in the binary:
// protocol.md, the human-readable WebSocket (parley.v1) and REST protocol;
// asyncapi.yaml, the AsyncAPI 3.0.0 description of the WebSocket API; and
// openapi.yaml, the OpenAPI 3.1 description of the REST API. The server
// serves the two YAML documents from FS at /asyncapi.yaml and /openapi.yaml.
//
// The documents are the contract the server is tested against; the tests in
// this package check that they parse, are internally consistent (every $ref
// resolves, every example matches its schema) and name every frame, path and
// code the protocol defines.
package docs

import "embed"

// FS holds asyncapi.yaml, openapi.yaml and protocol.md at its root.
//
//go:embed asyncapi.yaml openapi.yaml protocol.md
var FS embed.FS
