package postgres

// MigrateList exposes migrate to the external tests, which apply edited or
// broken migration lists.
var MigrateList = migrate
