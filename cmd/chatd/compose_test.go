package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/kurrentdb"
	"github.com/parleychat/parley/cmd/internal/storeenv"
)

// The repository's root, from cmd/chatd.
const repoRoot = "../.."

// TestComposeFile loads docker-compose.yml with compose-go, the loader
// behind `docker compose config`, in every combination of its profiles,
// each with the variables the README's Docker table says chatd needs for
// it, and checks the file against that table and against what the
// services themselves accept: see checkCompose.
func TestComposeFile(t *testing.T) {
	rows := readmeDockerTable(t)
	var profiles []string
	for _, r := range rows {
		if r.profile != "" {
			profiles = append(profiles, r.profile)
		}
	}
	if len(profiles) == 0 {
		t.Fatal("the README's Docker table names no profile")
	}
	for mask := range 1 << len(profiles) {
		var on []string
		for i, p := range profiles {
			if mask&(1<<i) != 0 {
				on = append(on, p)
			}
		}
		t.Run("profiles="+strings.Join(on, "+"), func(t *testing.T) {
			for _, p := range checkCompose(t.Context(), filepath.Join(repoRoot, "docker-compose.yml"), rows, on) {
				t.Error(p)
			}
		})
	}
}

// composeRow is a line of the README's table of compose services.
type composeRow struct {
	service, profile, image string
	ports                   []string // published ports, as written
	health                  string   // a word of the health check's command; "" for none
	chatdEnv                map[string]string
}

// readmeDockerTable reads the table of the README's Docker section.
func readmeDockerTable(t *testing.T) []composeRow {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "## Running the full stack with Docker")
	if !ok {
		t.Fatal(`README.md has no "## Running the full stack with Docker" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	none := func(s string) string {
		s = strings.TrimSpace(strings.ReplaceAll(s, "`", ""))
		if s == "—" {
			return ""
		}
		return s
	}
	var rows []composeRow
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) != 8 || !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| service") || strings.HasPrefix(line, "| ---") {
			continue
		}
		r := composeRow{service: none(cells[1]), profile: none(cells[2]), image: none(cells[3]), health: none(cells[5]), chatdEnv: map[string]string{}}
		if p := none(cells[4]); p != "" {
			for _, port := range strings.Split(p, ",") {
				r.ports = append(r.ports, strings.TrimSpace(port))
			}
		}
		for _, kv := range strings.Fields(none(cells[6])) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				t.Fatalf("README Docker table, %s: %q is not NAME=value", r.service, kv)
			}
			r.chatdEnv[k] = v
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		t.Fatal("the README's Docker section has no table of services")
	}
	return rows
}

// checkCompose loads the compose file at path with the given profiles on
// and returns its problems:
//
//   - the services started are the table's of no profile or of one on;
//   - each has the table's image, pinned to a version (or a digest), or
//     is built from the Dockerfile, whose base images are pinned too;
//   - each publishes the table's ports, on the same container ports;
//   - each has a health check exactly when the table says, running the
//     command it names;
//   - every depends_on target is started, with a health check when
//     chatd waits for it to be healthy, or is optional (required: false);
//   - KurrentDB's append limits pass the server's own start-up
//     validation, and chatd is given the same;
//   - chatd's environment passes chatd's configuration parser and names
//     only services that are started, at their container ports.
func checkCompose(ctx context.Context, path string, rows []composeRow, profiles []string) []string {
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	env := map[string]string{}
	want := map[string]composeRow{}
	for _, r := range rows {
		if r.profile == "" || slices.Contains(profiles, r.profile) {
			want[r.service] = r
			for k, v := range r.chatdEnv {
				env[k] = v
			}
		}
	}
	project, err := loader.LoadWithContext(ctx, types.ConfigDetails{
		WorkingDir:  filepath.Dir(path),
		ConfigFiles: []types.ConfigFile{{Filename: path}},
		Environment: env,
	}, func(o *loader.Options) {
		o.SetProjectName("parley", true)
		o.Profiles = profiles
	})
	if err != nil {
		return []string{fmt.Sprintf("load %s: %v", path, err)}
	}
	if diff := cmp.Diff(slices.Sorted(maps.Keys(want)), slices.Sorted(maps.Keys(project.Services))); diff != "" {
		fail("services started (-README +compose):\n%s", diff)
	}
	for name, svc := range project.Services {
		row, ok := want[name]
		if !ok {
			continue
		}
		if svc.Build != nil {
			if row.image != "built from Dockerfile" {
				fail("%s is built, the README says its image is %q", name, row.image)
			}
			problems = append(problems, checkDockerfile(filepath.Join(svc.Build.Context, svc.Build.Dockerfile))...)
		} else {
			if svc.Image != row.image {
				fail("%s runs %q, the README says %q", name, svc.Image, row.image)
			}
			if !pinned(svc.Image) {
				fail("%s's image %q is not pinned to a version", name, svc.Image)
			}
		}
		var ports []string
		for _, p := range svc.Ports {
			ports = append(ports, p.Published)
			if p.Published != strconv.Itoa(int(p.Target)) {
				fail("%s publishes container port %d as %s; the README's ports are both", name, p.Target, p.Published)
			}
		}
		sort.Strings(ports)
		if diff := cmp.Diff(row.ports, ports); diff != "" {
			fail("%s's ports (-README +compose):\n%s", name, diff)
		}
		switch hc := svc.HealthCheck; {
		case row.health == "" && hc != nil:
			fail("%s has a health check the README does not mention", name)
		case row.health != "" && hc == nil:
			fail("%s has no health check; the README says %q", name, row.health)
		case row.health != "" && !strings.Contains(strings.Join(hc.Test, " "), row.health):
			fail("%s's health check %q does not run %q as the README says", name, hc.Test, row.health)
		}
		for dep, d := range svc.DependsOn {
			target, started := project.Services[dep]
			switch {
			case !started && d.Required:
				fail("%s depends on %s, which profiles %q do not start; make it required: false", name, dep, profiles)
			case started && d.Condition == types.ServiceConditionHealthy && target.HealthCheck == nil:
				fail("%s waits for %s to be healthy, and it has no health check", name, dep)
			}
		}
	}
	if k, ok := project.Services["kurrentdb"]; ok {
		size, event, err := kurrentDBAppendLimits(k.Environment)
		if err != nil {
			fail("kurrentdb would not start: %v", err)
		}
		if c, ok := project.Services["chatd"]; ok {
			got, gerr := storeenv.FromEnv(func(k string) string { return deref(c.Environment[k]) })
			if gerr == nil && (got.Kind == storeenv.KurrentDB) && (got.MaxAppendSize != size || got.MaxAppendEventSize != event) {
				fail("chatd is told the server accepts %d per append and %d per event; kurrentdb accepts %d and %d", got.MaxAppendSize, got.MaxAppendEventSize, size, event)
			}
		}
	}
	if c, ok := project.Services["chatd"]; ok {
		problems = append(problems, checkChatdEnv(project, c)...)
	}
	return problems
}

// kurrentDBAppendLimits applies KurrentDB's start-up validation of its
// append limits (ClusterVNodeOptionsValidator) to a node's environment:
// MaxAppendSize at most a chunk (256 MiB), MaxAppendEventSize at most a
// log record (16 MiB) and at most MaxAppendSize; both default to their
// maxima.
func kurrentDBAppendLimits(env types.MappingWithEquals) (size, event int, err error) {
	read := func(name string, def int) (int, error) {
		v := deref(env[name])
		if v == "" {
			return def, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, fmt.Errorf("%s=%q is not a number", name, v)
		}
		return n, nil
	}
	if size, err = read("KURRENTDB_MAX_APPEND_SIZE", kurrentdb.DefaultMaxAppendSize); err != nil {
		return 0, 0, err
	}
	if event, err = read("KURRENTDB_MAX_APPEND_EVENT_SIZE", kurrentdb.DefaultMaxAppendEventSize); err != nil {
		return 0, 0, err
	}
	switch {
	case size > kurrentdb.DefaultMaxAppendSize:
		return 0, 0, fmt.Errorf("MaxAppendSize %d exceeded %d bytes", size, kurrentdb.DefaultMaxAppendSize)
	case event > kurrentdb.DefaultMaxAppendEventSize:
		return 0, 0, fmt.Errorf("MaxAppendEventSize %d exceeded %d bytes", event, kurrentdb.DefaultMaxAppendEventSize)
	case event > size:
		return 0, 0, fmt.Errorf("MaxAppendEventSize (%d) must be less than or equal to MaxAppendSize (%d)", event, size)
	}
	return size, event, nil
}

// checkChatdEnv parses chatd's environment with chatd's own parser and
// checks that every service it names is started, at a port it listens on.
func checkChatdEnv(project *types.Project, c types.ServiceConfig) []string {
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	getenv := func(k string) string { return deref(c.Environment[k]) }
	cfg, err := parseConfig(nil, getenv, io.Discard)
	if err != nil {
		return []string{fmt.Sprintf("chatd would not start: %v", err)}
	}
	// uses checks that a URL chatd uses points at a started service's
	// container port.
	uses := func(what, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			fail("chatd's %s %q does not parse", what, raw)
			return
		}
		host, port, _ := net.SplitHostPort(u.Host)
		svc, ok := project.Services[host]
		if !ok {
			fail("chatd's %s names %s, which is not started", what, host)
			return
		}
		for _, p := range svc.Ports {
			if strconv.Itoa(int(p.Target)) == port {
				return
			}
		}
		fail("chatd's %s uses port %s of %s, which does not publish it", what, port, host)
	}
	uses("database", cfg.DatabaseURL)
	uses("Redis", cfg.RedisURL)
	if cfg.EventStore == storeenv.KurrentDB {
		uses("KurrentDB URL", cfg.KurrentDBURL)
	}
	if cfg.RAG.QdrantURL != "" {
		uses("Qdrant URL", cfg.RAG.QdrantURL)
	}
	if cfg.LLMProvider != "" {
		uses("LLM URL", cfg.LLMURL)
	}
	if _, port, _ := net.SplitHostPort(cfg.HTTPAddr); !slices.ContainsFunc(c.Ports, func(p types.ServicePortConfig) bool { return strconv.Itoa(int(p.Target)) == port }) {
		fail("chatd listens on %s, which it does not publish", cfg.HTTPAddr)
	}
	return problems
}

// checkDockerfile checks that every base image is pinned and that the
// image runs chatd.
func checkDockerfile(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	stages := map[string]bool{}
	var entrypoint string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && strings.EqualFold(f[0], "FROM"):
			if img := f[1]; img != "scratch" && !stages[img] && !pinned(img) {
				problems = append(problems, fmt.Sprintf("%s: base image %q is not pinned to a version", path, img))
			}
			if len(f) == 4 && strings.EqualFold(f[2], "AS") {
				stages[f[3]] = true
			}
		case len(f) >= 2 && strings.EqualFold(f[0], "ENTRYPOINT"):
			entrypoint = strings.Join(f[1:], " ")
		}
	}
	if !strings.Contains(entrypoint, `"/usr/local/bin/chatd"`) {
		problems = append(problems, fmt.Sprintf("%s: ENTRYPOINT %s does not run chatd", path, entrypoint))
	}
	for _, pkg := range []string{"./cmd/chatd", "./cmd/chatctl"} {
		if !strings.Contains(string(b), "go build -trimpath -ldflags='-s -w' -o /out/"+filepath.Base(pkg)+" "+pkg) {
			problems = append(problems, fmt.Sprintf("%s: does not build %s", path, pkg))
		}
	}
	return problems
}

// versionTag is a version, major.minor at least, perhaps with a suffix:
// 15.13, v1.17.1, 1.26.8-bookworm.
var versionTag = regexp.MustCompile(`^v?\d+\.\d+(\.\d+)*(-[0-9A-Za-z.-]+)?$`)

// pinned reports whether an image reference names a version or a digest.
func pinned(image string) bool {
	if strings.Contains(image, "@sha256:") {
		return true
	}
	i := strings.LastIndexByte(image, ':')
	if i < 0 || strings.Contains(image[i:], "/") {
		return false // no tag: latest
	}
	return versionTag.MatchString(image[i+1:])
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// TestKurrentDBAppendLimits: the rule KurrentDB applies at start, which
// the compose file's settings must pass. 25.1 and later refuse the
// 2 MiB append limit older compose files set (their event limit, 16 MiB
// by default, then exceeds it).
func TestKurrentDBAppendLimits(t *testing.T) {
	s := func(v string) *string { return &v }
	for _, tc := range []struct {
		env  types.MappingWithEquals
		want string // part of the error; "" for none
	}{
		{types.MappingWithEquals{}, ""},
		{types.MappingWithEquals{"KURRENTDB_MAX_APPEND_SIZE": s("268435456"), "KURRENTDB_MAX_APPEND_EVENT_SIZE": s("16777216")}, ""},
		{types.MappingWithEquals{"KURRENTDB_MAX_APPEND_SIZE": s("4194304"), "KURRENTDB_MAX_APPEND_EVENT_SIZE": s("2097152")}, ""},
		{types.MappingWithEquals{"KURRENTDB_MAX_APPEND_SIZE": s("2097152")}, "MaxAppendEventSize (16777216) must be less than or equal to MaxAppendSize (2097152)"},
		{types.MappingWithEquals{"KURRENTDB_MAX_APPEND_SIZE": s("268435457")}, "MaxAppendSize 268435457 exceeded 268435456 bytes"},
		{types.MappingWithEquals{"KURRENTDB_MAX_APPEND_EVENT_SIZE": s("16777217")}, "MaxAppendEventSize 16777217 exceeded 16777216 bytes"},
		{types.MappingWithEquals{"KURRENTDB_MAX_APPEND_SIZE": s("2MiB")}, "is not a number"},
	} {
		_, _, err := kurrentDBAppendLimits(tc.env)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v, want it accepted", tc.env, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: %v, want an error saying %q", tc.env, err, tc.want)
		}
	}
}

func TestPinned(t *testing.T) {
	for img, want := range map[string]bool{
		"postgres:15.13": true, "redis:7.4.2": true, "qdrant/qdrant:v1.17.1": true,
		"golang:1.26.8-bookworm": true, "docker.kurrent.io/kurrent-latest/kurrentdb:26.0.3": true,
		"redis@sha256:0123abcd": true, "localhost:5000/app:1.2": true,
		"postgres:15": false, "qdrant/qdrant:latest": false, "ollama/ollama": false,
		"localhost:5000/app": false, "gcr.io/distroless/static-debian12:nonroot": false,
	} {
		if got := pinned(img); got != want {
			t.Errorf("pinned(%q) = %v, want %v", img, got, want)
		}
	}
}
