// Package privacytest holds the contract suite every privacy.KeyStore
// passes (RunKeyStoreTests) and an in-memory KeyStore for tests.
package privacytest
