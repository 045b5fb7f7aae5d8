package chatdenv

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDataKeysFromEnv(t *testing.T) {
	k1 := strings.Repeat("11", 32)
	k2 := "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="
	dir := t.TempDir()
	file := filepath.Join(dir, "keys")
	if err := os.WriteFile(file, []byte("# current\n"+k2+"\n\n"+k1+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		keys    int
		dev     bool
		problem string
	}{
		{"one key", map[string]string{"PARLEY_DATA_KEY": k1}, 1, false, ""},
		{"rotation list", map[string]string{"PARLEY_DATA_KEY": k2 + ", " + k1}, 2, false, ""},
		{"file", map[string]string{"PARLEY_DATA_KEY_FILE": file}, 2, false, ""},
		{"both", map[string]string{"PARLEY_DATA_KEY": k1, "PARLEY_DATA_KEY_FILE": file}, 0, false, "both set"},
		{"short", map[string]string{"PARLEY_DATA_KEY": "secret"}, 0, false, "key 1"},
		{"twice", map[string]string{"PARLEY_DATA_KEY": k1 + "," + k1}, 0, false, "twice"},
		{"missing file", map[string]string{"PARLEY_DATA_KEY_FILE": filepath.Join(dir, "nope")}, 0, false, "PARLEY_DATA_KEY_FILE"},
		{"development", map[string]string{"HOME": dir}, 1, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := DataKeysFromEnv(func(k string) string { return tc.env[k] })
			if err == nil {
				err = d.Load()
			}
			if tc.problem != "" {
				if err == nil || !strings.Contains(err.Error(), tc.problem) {
					t.Fatalf("err = %v, want one naming %q", err, tc.problem)
				}
				if strings.Contains(err.Error(), "secret") && tc.env["PARLEY_DATA_KEY"] == "secret" {
					t.Errorf("the error repeats the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(d.KEKs) != tc.keys || (d.DevPath != "") != tc.dev {
				t.Fatalf("got %d keys, dev path %q; want %d, dev %v", len(d.KEKs), d.DevPath, tc.keys, tc.dev)
			}
			if strings.Contains(d.String(), k1) || strings.Contains(d.String(), k2) {
				t.Errorf("String shows a key: %s", d)
			}
		})
	}
}

func TestDevDataKeyIsMadeOnceAndKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "dev-data-key")
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			d := DataKeys{DevPath: path}
			if err := d.Load(); err != nil {
				t.Error(err)
				return
			}
			ids[i] = d.KEKs[0].ID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("racing loads made different keys: %v", ids)
		}
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("dev key file: %v, %v; want mode 0600", fi, err)
	}
}

func TestParseRetention(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, true}, {"off", 0, true}, {"365d", 365 * 24 * time.Hour, true}, {"720h", 720 * time.Hour, true},
		{"5m", 0, false}, {"-1d", 0, false}, {"a year", 0, false},
	} {
		got, err := ParseRetention(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseRetention(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
