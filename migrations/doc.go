// Package migrations embeds Parley's Postgres schema as numbered SQL files
// (NNNN_name.sql). adapters/postgres applies them in order under an
// advisory lock at start-up and through `chatctl migrate up`.
package migrations

import "embed"

// FS holds the numbered migration files.
//
//go:embed *.sql
var FS embed.FS
