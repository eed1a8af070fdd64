package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/ember-profiler/ember/collector"
	"github.com/ember-profiler/ember/internal/bytesize"
	"github.com/ember-profiler/ember/schema"
)

// daemonConfig is everything `ember daemon` can be told, with its defaults.
// A YAML file mirrors the flags (same names, dashes as in the flags); flags
// given on the command line win over the file. Repeatable flags are lists
// in the file, except label, which is a map of names to values.
type daemonConfig struct {
	DataDir          string            `yaml:"data-dir"`
	Listen           string            `yaml:"listen"`
	AuthTokenFile    string            `yaml:"auth-token-file"`
	TLSCert          string            `yaml:"tls-cert"`
	TLSKey           string            `yaml:"tls-key"`
	FrequencyHz      int               `yaml:"frequency"`
	Interval         time.Duration     `yaml:"interval"`
	Retention        time.Duration     `yaml:"retention"`
	MaxDisk          bytesize.Size     `yaml:"max-disk"`
	MinFreeDisk      bytesize.Size     `yaml:"min-free-disk"`
	SymbolCacheSize  bytesize.Size     `yaml:"symbol-cache-size"`
	DictCacheSize    bytesize.Size     `yaml:"dictionary-cache-size"`
	PathCacheSize    bytesize.Size     `yaml:"path-cache-size"`
	MemoryLimit      bytesize.Size     `yaml:"memory-limit"`
	DebugDirs        []string          `yaml:"debug-dir"`
	Labels           map[string]string `yaml:"label"`
	AllowedHosts     []string          `yaml:"allowed-host"`
	IncludeIdle      bool              `yaml:"include-idle"`
	OffCPU           bool              `yaml:"offcpu"`
	OffCPUMinWait    time.Duration     `yaml:"offcpu-min-wait"`
	StackMapEntries  uint32            `yaml:"stack-map-entries"`
	Unwind           string            `yaml:"unwind"`
	UnwindTableSize  bytesize.Size     `yaml:"unwind-table-size"`
	Python           bool              `yaml:"python"`
	CountMapEntries  uint32            `yaml:"count-map-entries"`
	DrainInterval    time.Duration     `yaml:"drain-interval"`
	ShutdownDeadline time.Duration     `yaml:"shutdown-timeout"`
	QueryNice        int               `yaml:"query-nice"`
	Export           []string          `yaml:"export"`
}

const pythonFlagHelp = "walk CPython's own frames (3.8 to 3.13, with --unwind dwarf), so Python programs show their functions, files and lines instead of the interpreter's loop"

func defaultDaemonConfig() daemonConfig {
	return daemonConfig{
		DataDir:         "/var/lib/ember",
		Listen:          "127.0.0.1:7070",
		FrequencyHz:     99,
		Interval:        10 * time.Second,
		Retention:       168 * time.Hour,
		MaxDisk:         2 << 30,
		MinFreeDisk:     256 << 20,
		SymbolCacheSize: 32 << 20,
		DictCacheSize:   32 << 20,
		PathCacheSize:   32 << 20,
		StackMapEntries: 4096,
		Unwind:          collector.UnwindDWARF,
		UnwindTableSize: 64 << 20,
		Python:          true,
		CountMapEntries: 16384,
		OffCPUMinWait:   collector.DefaultOffCPUMinWait,
		DrainInterval:   time.Second,
		// Long enough for a host at load 30 on 2 CPUs (CI's loaded tests,
		// the busy-host soak), where naming and storing the last interval
		// took over the 7.5 s a 10 s timeout gave them and it was lost.
		ShutdownDeadline: 30 * time.Second,
		QueryNice:        -5,
	}
}

// bindDaemonFlags defines the flags on fs, writing into cfg; label flags go
// to labels so they can be merged with the file's.
func bindDaemonFlags(fs *pflag.FlagSet, cfg *daemonConfig, labels *[]string, configPath *string) {
	fs.StringVar(configPath, "config", "", "YAML file with the same settings as the flags (flags win)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "where the profile store lives")
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "address of the HTTP API (loopback by default)")
	fs.StringVar(&cfg.AuthTokenFile, "auth-token-file", "", "file holding a bearer token the HTTP API requires (needed off loopback)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate file for the HTTP API")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "TLS key file for the HTTP API")
	fs.IntVarP(&cfg.FrequencyHz, "frequency", "F", cfg.FrequencyHz, "samples per second on each CPU")
	fs.DurationVar(&cfg.Interval, "interval", cfg.Interval, "how much time each stored profile covers")
	fs.DurationVar(&cfg.Retention, "retention", cfg.Retention, "how long profiles are kept")
	fs.Var(&cfg.MaxDisk, "max-disk", "disk the store may use before the oldest data goes (e.g. 2GiB)")
	fs.Var(&cfg.MinFreeDisk, "min-free-disk", "stop writing while the filesystem has less free space than this")
	fs.Var(&cfg.SymbolCacheSize, "symbol-cache-size", "memory budget of parsed symbol tables, DWARF and perf maps")
	fs.Var(&cfg.DictCacheSize, "dictionary-cache-size", "memory budget of the store's dictionary entries (stacks, locations, functions, label sets) kept for appends and small queries; larger queries read the disk")
	fs.Var(&cfg.PathCacheSize, "path-cache-size", "memory budget of stacks kept named for flame graphs, so that the live hour is not read from the dictionary by every request")
	fs.Var(&cfg.MemoryLimit, "memory-limit", "soft limit of the Go heap (GOMEMLIMIT); 0 for none. Below the live heap it costs CPU, not memory")
	fs.StringArrayVar(&cfg.DebugDirs, "debug-dir", nil, "also look for separate debug files under this folder, laid out like /usr/lib/debug (repeatable)")
	fs.StringArrayVar(labels, "label", nil, "host label key=value added to every sample (repeatable)")
	fs.StringArrayVar(&cfg.AllowedHosts, "allowed-host", nil, "a further Host header name the API accepts on a loopback address, besides localhost and the listen address (repeatable)")
	fs.BoolVar(&cfg.IncludeIdle, "include-idle", cfg.IncludeIdle, "keep samples of the idle task")
	fs.BoolVar(&cfg.OffCPU, "offcpu", cfg.OffCPU, "also record time off the CPU (from context switches) by stack and thread state")
	fs.DurationVar(&cfg.OffCPUMinWait, "offcpu-min-wait", cfg.OffCPUMinWait, "shortest time off the CPU recorded; shorter waits are only counted")
	fs.Uint32Var(&cfg.StackMapEntries, "stack-map-entries", cfg.StackMapEntries, "distinct stacks each of the two BPF stack maps holds per drain")
	fs.StringVar(&cfg.Unwind, "unwind", cfg.Unwind, `how user stacks are walked: "dwarf" (.eh_frame and Go .gopclntab tables in BPF, frame pointers where a file has none) or "fp" (the kernel's frame-pointer walk)`)
	fs.Var(&cfg.UnwindTableSize, "unwind-table-size", "BPF memory for .eh_frame unwind tables (4 bytes a row, taken in 256KiB chunks as tables load); tables beyond it are reported and their stacks marked")
	fs.BoolVar(&cfg.Python, "python", cfg.Python, pythonFlagHelp)
	fs.Uint32Var(&cfg.CountMapEntries, "count-map-entries", cfg.CountMapEntries, "entries in each of the two BPF sample count maps")
	fs.DurationVar(&cfg.DrainInterval, "drain-interval", cfg.DrainInterval, "how often the BPF maps are read and emptied")
	fs.DurationVar(&cfg.ShutdownDeadline, "shutdown-timeout", cfg.ShutdownDeadline, "how long stopping may take: naming and storing the last interval, open requests, closing")
	fs.StringArrayVar(&cfg.Export, "export", nil, "send every stored profile to a fleet backend: pyroscope=https://host:4040 (push API), pyroscope-ingest=https://host:4040 (/ingest) or otlp=host:4317 (TLS; http://host:4317 for plaintext), options after commas (tenant=, token-file=, basic-auth-file=, ca-file=, service-name={comm}, pid=true, timeout=, gzip=, name=); repeatable")
	fs.IntVar(&cfg.QueryNice, "query-nice", cfg.QueryNice, "nice value of the threads that answer profile, flame graph, diff and series requests, so a loaded host still answers (below 0 needs CAP_SYS_NICE; 0: the daemon's own)")
}

// loadDaemonConfig returns the defaults, overlaid by the file at path (if
// any), overlaid by the flags that were set on the command line.
func loadDaemonConfig(path string, fromFlags daemonConfig, labelFlags []string, fs *pflag.FlagSet) (daemonConfig, error) {
	cfg := defaultDaemonConfig()
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("--config: %w", err)
		}
		if err := decodeConfigFile(raw, &cfg); err != nil {
			return cfg, fmt.Errorf("--config %s: %w", path, err)
		}
	}
	// Flags the user set win; unset flags keep the file's (or default) value.
	overlays := map[string]func(){
		"data-dir":              func() { cfg.DataDir = fromFlags.DataDir },
		"listen":                func() { cfg.Listen = fromFlags.Listen },
		"auth-token-file":       func() { cfg.AuthTokenFile = fromFlags.AuthTokenFile },
		"tls-cert":              func() { cfg.TLSCert = fromFlags.TLSCert },
		"tls-key":               func() { cfg.TLSKey = fromFlags.TLSKey },
		"frequency":             func() { cfg.FrequencyHz = fromFlags.FrequencyHz },
		"interval":              func() { cfg.Interval = fromFlags.Interval },
		"retention":             func() { cfg.Retention = fromFlags.Retention },
		"max-disk":              func() { cfg.MaxDisk = fromFlags.MaxDisk },
		"min-free-disk":         func() { cfg.MinFreeDisk = fromFlags.MinFreeDisk },
		"symbol-cache-size":     func() { cfg.SymbolCacheSize = fromFlags.SymbolCacheSize },
		"memory-limit":          func() { cfg.MemoryLimit = fromFlags.MemoryLimit },
		"dictionary-cache-size": func() { cfg.DictCacheSize = fromFlags.DictCacheSize },
		"path-cache-size":       func() { cfg.PathCacheSize = fromFlags.PathCacheSize },
		"debug-dir":             func() { cfg.DebugDirs = fromFlags.DebugDirs },
		"allowed-host":          func() { cfg.AllowedHosts = fromFlags.AllowedHosts },
		"include-idle":          func() { cfg.IncludeIdle = fromFlags.IncludeIdle },
		"offcpu":                func() { cfg.OffCPU = fromFlags.OffCPU },
		"offcpu-min-wait":       func() { cfg.OffCPUMinWait = fromFlags.OffCPUMinWait },
		"stack-map-entries":     func() { cfg.StackMapEntries = fromFlags.StackMapEntries },
		"unwind":                func() { cfg.Unwind = fromFlags.Unwind },
		"unwind-table-size":     func() { cfg.UnwindTableSize = fromFlags.UnwindTableSize },
		"python":                func() { cfg.Python = fromFlags.Python },
		"count-map-entries":     func() { cfg.CountMapEntries = fromFlags.CountMapEntries },
		"drain-interval":        func() { cfg.DrainInterval = fromFlags.DrainInterval },
		"shutdown-timeout":      func() { cfg.ShutdownDeadline = fromFlags.ShutdownDeadline },
		"query-nice":            func() { cfg.QueryNice = fromFlags.QueryNice },
		"export":                func() { cfg.Export = fromFlags.Export },
	}
	fs.Visit(func(f *pflag.Flag) {
		if apply, ok := overlays[f.Name]; ok {
			apply()
		}
	})
	for _, kv := range labelFlags {
		key, value, ok := strings.Cut(kv, "=")
		if !ok {
			return cfg, fmt.Errorf("--label %q: want key=value", kv)
		}
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		cfg.Labels[key] = value
	}
	return cfg, cfg.validate()
}

// configFile is the YAML file: the settings, plus the names of the first
// releases (labels, debug-dirs), still read.
type configFile struct {
	daemonConfig `yaml:",inline"`
	OldDebugDirs []string          `yaml:"debug-dirs"`
	OldLabels    map[string]string `yaml:"labels"`
}

func decodeConfigFile(raw []byte, cfg *daemonConfig) error {
	file := configFile{daemonConfig: *cfg}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if file.OldDebugDirs != nil {
		if file.DebugDirs != nil {
			return errors.New("debug-dir and debug-dirs (its old name): give one")
		}
		file.DebugDirs = file.OldDebugDirs
	}
	if file.OldLabels != nil {
		if file.Labels != nil {
			return errors.New("label and labels (its old name): give one")
		}
		file.Labels = file.OldLabels
	}
	*cfg = file.daemonConfig
	return nil
}

func (c *daemonConfig) validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("tls-cert and tls-key: give both or neither")
	}
	switch {
	case c.DataDir == "":
		return errors.New("data-dir: must not be empty")
	case c.FrequencyHz < 1 || c.FrequencyHz > 10000:
		return fmt.Errorf("frequency: %d Hz is out of range 1..10000", c.FrequencyHz)
	case c.Interval < time.Second || c.Interval > time.Hour:
		return fmt.Errorf("interval: %s is out of range 1s..1h", c.Interval)
	case c.DrainInterval < 100*time.Millisecond || c.DrainInterval > c.Interval:
		return fmt.Errorf("drain-interval: %s must be between 100ms and the interval (%s)", c.DrainInterval, c.Interval)
	case c.Retention < c.Interval:
		return fmt.Errorf("retention: %s is shorter than the interval", c.Retention)
	case c.MaxDisk < 64<<20:
		return fmt.Errorf("max-disk: %s is below the minimum of 64MiB", c.MaxDisk)
	case c.MinFreeDisk < 0:
		return errors.New("min-free-disk: must not be negative")
	case c.MemoryLimit != 0 && c.MemoryLimit < 32<<20:
		return fmt.Errorf("memory-limit: %s is below the minimum of 32MiB (0 for none)", c.MemoryLimit)
	case c.SymbolCacheSize < 4<<20:
		return fmt.Errorf("symbol-cache-size: %s is below the minimum of 4MiB", c.SymbolCacheSize)
	case c.DictCacheSize < 1<<20:
		return fmt.Errorf("dictionary-cache-size: %s is below the minimum of 1MiB", c.DictCacheSize)
	case c.PathCacheSize < 1<<20:
		return fmt.Errorf("path-cache-size: %s is below the minimum of 1MiB", c.PathCacheSize)
	case c.ShutdownDeadline <= 0:
		return errors.New("shutdown-timeout: must be positive")
	case c.QueryNice < -20 || c.QueryNice > 19:
		return fmt.Errorf("query-nice: %d is not a nice value (-20 to 19)", c.QueryNice)
	case c.Unwind != collector.UnwindDWARF && c.Unwind != collector.UnwindFP:
		return fmt.Errorf("unwind: %q is not dwarf or fp", c.Unwind)
	case c.UnwindTableSize < 1<<20:
		return fmt.Errorf("unwind-table-size: %s is below the minimum of 1MiB", c.UnwindTableSize)
	}
	// What the sampler would refuse once the store is open: refused here,
	// as a mistake in the settings.
	sampler := collector.Config{FrequencyHz: c.FrequencyHz, StackMapEntries: c.StackMapEntries,
		CountMapEntries: c.CountMapEntries, Unwind: c.Unwind, UnwindTableBytes: int64(c.UnwindTableSize), NoPython: !c.Python,
		OffCPU: c.OffCPU, OffCPUMinWait: c.OffCPUMinWait}
	if err := sampler.Validate(); err != nil {
		return errors.New(strings.TrimPrefix(flagError(err).Error(), "--"))
	}
	for key := range c.Labels {
		if err := schema.CheckHostLabel(key); err != nil {
			return err
		}
	}
	_, err := parseExportTargets(c.Export)
	return err
}

// checkFiles reads the files the settings name (token, certificate), so a
// wrong path or a bad file is refused as a mistake in the settings before
// the store opens. The daemon reads them again when it starts.
func (c *daemonConfig) checkFiles() error {
	if _, err := readToken(c.AuthTokenFile); err != nil {
		return err
	}
	if c.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			return fmt.Errorf("tls-cert/tls-key: %w", err)
		}
	}
	targets, err := parseExportTargets(c.Export)
	for _, t := range targets {
		if err := t.Check(); err != nil {
			return fmt.Errorf("export %s: %w", t.Name, err)
		}
	}
	return err
}
