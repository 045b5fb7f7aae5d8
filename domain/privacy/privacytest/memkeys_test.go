package privacytest

import "testing"

func TestMemKeys(t *testing.T) {
	RunKeyStoreTests(t, func(*testing.T) Store { return NewMemKeys() })
}
