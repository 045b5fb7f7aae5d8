package domain_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDomainImportsStandardLibraryOnly keeps the dependency rule: domain
// and its subpackages import nothing outside the standard library except
// other domain packages. Tests may also use go-cmp and the in-memory
// store.
func TestDomainImportsStandardLibraryOnly(t *testing.T) {
	const self = "github.com/parleychat/parley/domain"
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
			return err
		}
		isTest := strings.HasSuffix(path, "_test.go")
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, src, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(p, "/")
			if isTest && (p == "github.com/google/go-cmp/cmp" || p == "github.com/parleychat/parley/adapters/inmem") {
				continue
			}
			if strings.Contains(first, ".") && p != self && !strings.HasPrefix(p, self+"/") {
				t.Errorf("%s imports %s: domain may import the standard library only", path, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
