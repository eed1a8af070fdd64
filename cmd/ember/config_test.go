package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// parseDaemonArgs runs the daemon's flag parsing and config loading.
func parseDaemonArgs(t *testing.T, args ...string) (daemonConfig, error) {
	t.Helper()
	fs := pflag.NewFlagSet("daemon", pflag.ContinueOnError)
	flags := defaultDaemonConfig()
	var labels []string
	var configPath string
	bindDaemonFlags(fs, &flags, &labels, &configPath)
	if err := fs.Parse(args); err != nil {
		return daemonConfig{}, err
	}
	return loadDaemonConfig(configPath, flags, labels, fs)
}

func TestDaemonConfigDefaults(t *testing.T) {
	cfg, err := parseDaemonArgs(t)
	if err != nil {
		t.Fatal(err)
	}
	want := defaultDaemonConfig()
	if cfg.DataDir != want.DataDir || cfg.Listen != "127.0.0.1:7070" || cfg.FrequencyHz != 99 ||
		cfg.Interval != 10*time.Second || cfg.Retention != 168*time.Hour || cfg.MaxDisk != 2<<30 {
		t.Errorf("defaults: %+v", cfg)
	}
}

// The file mirrors the flags; flags given on the command line win.
func TestDaemonConfigFileAndFlags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ember.yaml")
	os.WriteFile(path, []byte(`
data-dir: /srv/ember
frequency: 49
interval: 30s
max-disk: 512MiB
labels:
  host: web-1
  dc: fra
`), 0o644)
	cfg, err := parseDaemonArgs(t, "--config", path, "--frequency", "199", "--label", "dc=ams")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/srv/ember" || cfg.FrequencyHz != 199 || cfg.Interval != 30*time.Second ||
		cfg.MaxDisk != 512<<20 || cfg.Labels["host"] != "web-1" || cfg.Labels["dc"] != "ams" {
		t.Errorf("got %+v", cfg)
	}
}

func TestDaemonConfigErrorsNameTheSetting(t *testing.T) {
	dir := t.TempDir()
	unknown := filepath.Join(dir, "unknown.yaml")
	os.WriteFile(unknown, []byte("frequncy: 99\n"), 0o644)
	badSize := filepath.Join(dir, "size.yaml")
	os.WriteFile(badSize, []byte("max-disk: lots\n"), 0o644)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--frequency", "0"}, "frequency: 0 Hz"},
		{[]string{"--interval", "100ms"}, "interval: 100ms is out of range"},
		{[]string{"--drain-interval", "20s"}, "drain-interval"},
		{[]string{"--retention", "1s"}, "retention"},
		{[]string{"--max-disk", "1MiB"}, "max-disk: 1MiB is below"},
		{[]string{"--max-disk", "two gigs"}, "is not a size"},
		{[]string{"--label", "novalue"}, "want key=value"},
		{[]string{"--label", "comm=x"}, "reserved"},
		{[]string{"--label", "1bad=x"}, "names are letters"},
		{[]string{"--config", unknown}, "field frequncy not found"},
		{[]string{"--config", badSize}, "is not a size"},
		{[]string{"--config", filepath.Join(dir, "missing.yaml")}, "no such file"},
	}
	for _, tt := range tests {
		_, err := parseDaemonArgs(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: got %v, want an error containing %q", tt.args, err, tt.want)
		}
	}
}

// The configuration shipped in deploy/ loads as it is.
func TestShippedConfigLoads(t *testing.T) {
	cfg, err := parseDaemonArgs(t, "--config", "../../deploy/ember.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/var/lib/ember" || cfg.MinFreeDisk != 256<<20 {
		t.Errorf("got %+v", cfg)
	}
}

// The settings shown commented out in deploy/ember.yaml load too.
func TestShippedConfigExamplesLoad(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/ember.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	settings := false // past the header comment
	for _, line := range strings.Split(string(raw), "\n") {
		settings = settings || line != "" && !strings.HasPrefix(line, "#")
		if settings {
			line = strings.TrimPrefix(line, "# ")
		}
		lines = append(lines, line)
	}
	path := filepath.Join(t.TempDir(), "ember.yaml")
	os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644)
	cfg, err := parseDaemonArgs(t, "--config", path)
	if err != nil {
		t.Fatalf("%v in:\n%s", err, strings.Join(lines, "\n"))
	}
	if cfg.Labels["host"] != "web-1" || len(cfg.DebugDirs) != 1 || len(cfg.AllowedHosts) != 1 {
		t.Errorf("got %+v", cfg)
	}
}

// Every key of the file is the name of a flag, and every flag but --config
// has a key.
func TestDaemonConfigKeysAreFlagNames(t *testing.T) {
	fs := pflag.NewFlagSet("daemon", pflag.ContinueOnError)
	cfg := defaultDaemonConfig()
	var labels []string
	var configPath string
	bindDaemonFlags(fs, &cfg, &labels, &configPath)
	keys := map[string]bool{}
	fields := reflect.TypeOf(cfg)
	for i := range fields.NumField() {
		keys[fields.Field(i).Tag.Get("yaml")] = true
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name != "config" && !keys[f.Name] {
			t.Errorf("flag --%s has no key in the file", f.Name)
		}
		delete(keys, f.Name)
	})
	for key := range keys {
		t.Errorf("key %s is not the name of a flag", key)
	}
}

// label, debug-dir and allowed-host as the flags name them; labels and
// debug-dirs, the first names, still read.
func TestDaemonConfigRepeatableKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(text), 0o644)
		return path
	}
	current := write("current.yaml", "label:\n  host: web-1\ndebug-dir: [/srv/debug]\nallowed-host: [ember.example]\n")
	old := write("old.yaml", "labels:\n  host: web-2\ndebug-dirs: [/srv/old]\n")
	both := write("both.yaml", "labels:\n  host: a\nlabel:\n  host: b\n")
	cfg, err := parseDaemonArgs(t, "--config", current)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Labels["host"] != "web-1" || len(cfg.DebugDirs) != 1 || cfg.DebugDirs[0] != "/srv/debug" ||
		len(cfg.AllowedHosts) != 1 || cfg.AllowedHosts[0] != "ember.example" {
		t.Errorf("current keys: %+v", cfg)
	}
	cfg, err = parseDaemonArgs(t, "--config", current, "--allowed-host", "a.example", "--allowed-host", "b.example")
	if err != nil || len(cfg.AllowedHosts) != 2 || cfg.AllowedHosts[1] != "b.example" {
		t.Errorf("--allowed-host over the file: %v %+v", err, cfg.AllowedHosts)
	}
	cfg, err = parseDaemonArgs(t, "--config", old)
	if err != nil || cfg.Labels["host"] != "web-2" || len(cfg.DebugDirs) != 1 || cfg.DebugDirs[0] != "/srv/old" {
		t.Errorf("old keys: %v %+v", err, cfg)
	}
	if _, err := parseDaemonArgs(t, "--config", both); err == nil || !strings.Contains(err.Error(), "label and labels") {
		t.Errorf("both names: %v", err)
	}
}

// --export is repeatable, lives in the file as a list, and is checked at
// start: a bad target, two of one name, or a missing secret file are
// mistakes in the settings.
func TestDaemonConfigExport(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ember.yaml")
	os.WriteFile(path, []byte(`
export:
  - pyroscope=https://pyroscope.example:4040,tenant=team-a
  - pyroscope-ingest=http://pyroscope.example:4040
  - otlp=collector.example:4317
`), 0o644)
	cfg, err := parseDaemonArgs(t, "--config", path)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Export) != 3 || !strings.HasPrefix(cfg.Export[1], "pyroscope-ingest=") || !strings.HasPrefix(cfg.Export[2], "otlp=") {
		t.Errorf("from the file: %v", cfg.Export)
	}
	cfg, err = parseDaemonArgs(t, "--config", path, "--export", "otlp=http://127.0.0.1:4317")
	if err != nil || len(cfg.Export) != 1 {
		t.Errorf("flags win over the file: %v %v", cfg.Export, err)
	}
	for _, args := range [][]string{
		{"--export", "zipkin=http://x"},
		{"--export", "otlp=c:4317", "--export", "otlp=d:4317"},
	} {
		if _, err := parseDaemonArgs(t, args...); err == nil || !strings.Contains(err.Error(), "export") {
			t.Errorf("%v: %v, want an export error", args, err)
		}
	}
	cfg, err = parseDaemonArgs(t, "--export", "otlp=c:4317,token-file=/nonexistent/token")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.checkFiles(); err == nil || !strings.Contains(err.Error(), "token-file") {
		t.Errorf("missing token file: %v", err)
	}
}
