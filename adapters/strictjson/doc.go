// Package strictjson decodes what clients send — WebSocket frames and REST
// bodies — more strictly than encoding/json does by default: the text
// must be valid UTF-8 with no lone surrogate escapes (encoding/json would
// replace them with U+FFFD), a key must match its field's name exactly
// (encoding/json matches case-insensitively, so {"type":"ping","Type":"x"}
// would set the field twice), no key may appear twice in one object, and
// no key may name a field the target does not have. The inbound adapters
// (wsapi, httpapi) share it, so every client input obeys one rule.
package strictjson
