package main

import (
	"os"
	"path/filepath"
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
