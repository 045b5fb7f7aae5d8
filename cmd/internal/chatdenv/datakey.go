package chatdenv

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/parleychat/parley/domain/privacy"
)

// DataKeys are the key-encryption keys that wrap rooms' data keys
// (domain/privacy), read by chatd and chatctl alike:
//
//	PARLEY_DATA_KEY       one or more keys, comma-separated, each 32 random
//	                      bytes in base64 or hex (openssl rand -base64 32).
//	                      The first wraps new keys; every one unwraps the
//	                      keys it wrapped. To rotate: put a new key first,
//	                      run `chatctl keys rotate`, then drop the old one.
//	PARLEY_DATA_KEY_FILE  a file holding the keys instead, one a line (#
//	                      starts a comment), for secret mounts.
//
// With neither, development mode: a key generated on first use in
// DevPath (PARLEY_DEV_DATA_KEY_PATH, else parley/dev-data-key under
// XDG_CONFIG_HOME or ~/.config), with a loud warning.
type DataKeys struct {
	KEKs privacy.KEKs
	// DevPath is the development key's file when no key is configured.
	DevPath string
}

// String never shows a key.
func (d DataKeys) String() string {
	if d.DevPath != "" {
		return "development key in " + d.DevPath
	}
	if len(d.KEKs) == 0 {
		return "none"
	}
	ids := make([]string, len(d.KEKs))
	for i, k := range d.KEKs {
		ids[i] = k.ID
	}
	return fmt.Sprintf("%d configured (ids %s)", len(d.KEKs), strings.Join(ids, ", "))
}

// DataKeysFromEnv reads the KEKs as DataKeys describes. In development
// mode it only names DevPath: Load reads or makes the key.
func DataKeysFromEnv(getenv func(string) string) (DataKeys, error) {
	list, file := strings.TrimSpace(getenv("PARLEY_DATA_KEY")), strings.TrimSpace(getenv("PARLEY_DATA_KEY_FILE"))
	switch {
	case list != "" && file != "":
		return DataKeys{}, errors.New("PARLEY_DATA_KEY and PARLEY_DATA_KEY_FILE are both set: set one")
	case list != "":
		keks, err := parseKEKs(strings.Split(list, ","), "PARLEY_DATA_KEY")
		return DataKeys{KEKs: keks}, err
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return DataKeys{}, fmt.Errorf("PARLEY_DATA_KEY_FILE: %w", err)
		}
		keks, err := parseKEKs(lines(b), "PARLEY_DATA_KEY_FILE "+file)
		return DataKeys{KEKs: keks}, err
	}
	path := getenv("PARLEY_DEV_DATA_KEY_PATH")
	if path == "" {
		dir := getenv("XDG_CONFIG_HOME")
		if dir == "" && getenv("HOME") != "" {
			dir = filepath.Join(getenv("HOME"), ".config")
		}
		if dir == "" {
			return DataKeys{}, nil // Load says what to set
		}
		path = filepath.Join(dir, "parley", "dev-data-key")
	}
	return DataKeys{DevPath: path}, nil
}

// Load reads the development key, creating it on first use, when no key
// is configured; with configured keys it does nothing.
func (d *DataKeys) Load() error {
	if len(d.KEKs) > 0 {
		return nil
	}
	if d.DevPath == "" {
		return errors.New("no data key: set PARLEY_DATA_KEY (openssl rand -base64 32), or HOME or PARLEY_DEV_DATA_KEY_PATH for a development key")
	}
	kek, err := devKey(d.DevPath)
	if err != nil {
		return fmt.Errorf("the development data key in %s (set PARLEY_DATA_KEY to use your own): %w", d.DevPath, err)
	}
	d.KEKs = privacy.KEKs{kek}
	return nil
}

// DevWarning is what chatd and chatctl log in development mode.
func (d DataKeys) DevWarning() string {
	return "PARLEY_DATA_KEY is not set: conversations are encrypted under a development key generated in " + d.DevPath +
		"; whoever reads that file reads every conversation, and whoever loses it loses them. Set PARLEY_DATA_KEY (openssl rand -base64 32) or PARLEY_DATA_KEY_FILE outside development."
}

func lines(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func parseKEKs(parts []string, where string) (privacy.KEKs, error) {
	var keks privacy.KEKs
	seen := map[string]bool{}
	for i, p := range parts {
		if strings.TrimSpace(p) == "" {
			continue
		}
		k, err := privacy.ParseKEK(p)
		if err != nil {
			return nil, fmt.Errorf("%s, key %d: %w", where, i+1, err)
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("%s, key %d: the same key is listed twice", where, i+1)
		}
		seen[k.ID] = true
		keks = append(keks, k)
	}
	if len(keks) == 0 {
		return nil, fmt.Errorf("%s holds no key", where)
	}
	return keks, nil
}

// devKey reads the development key at path, creating it (mode 0600) when
// it does not exist; of processes racing to create it, one wins and all
// read its key.
func devKey(path string) (privacy.KEK, error) {
	if b, err := os.ReadFile(path); err == nil {
		return privacy.ParseKEK(string(b))
	} else if !errors.Is(err, os.ErrNotExist) {
		return privacy.KEK{}, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return privacy.KEK{}, err
	}
	raw := make([]byte, privacy.KeySize)
	if _, err := rand.Read(raw); err != nil {
		return privacy.KEK{}, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".dev-data-key-*")
	if err != nil {
		return privacy.KEK{}, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(base64.StdEncoding.EncodeToString(raw) + "\n"); err != nil {
		tmp.Close()
		return privacy.KEK{}, err
	}
	if err := tmp.Close(); err != nil {
		return privacy.KEK{}, err
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return privacy.KEK{}, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return privacy.KEK{}, err
	}
	return privacy.ParseKEK(string(b))
}

// ParseRetention reads PARLEY_RETENTION: empty, "0" or "off" for none, a
// number of days ("365d"), or a Go duration ("720h").
func ParseRetention(v string) (time.Duration, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "0", "off":
		return 0, nil
	}
	bad := fmt.Errorf("PARLEY_RETENTION=%q: write a number of days (365d) or a duration (720h), or off", v)
	if n, ok := strings.CutSuffix(v, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 {
			return 0, bad
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, bad
	}
	if d < time.Hour {
		return 0, fmt.Errorf("PARLEY_RETENTION=%q is under an hour: a room would be erased while its owner reads it", v)
	}
	return d, nil
}

func retentionString(d time.Duration) string {
	if d == 0 {
		return "off"
	}
	if d%(24*time.Hour) == 0 {
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
	return d.String()
}
