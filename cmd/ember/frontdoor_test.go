package main

import (
	"bufio"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ember-profiler/ember/internal/profiletest"
	"github.com/ember-profiler/ember/internal/testenv"
)

// Every mistake in the command line or the settings exits 2 and names its
// flag, whatever flag it is; failures at run time exit 1.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	shortToken := filepath.Join(dir, "token")
	os.WriteFile(shortToken, []byte("short\n"), 0o600)
	busy := listenBusyPort(t)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"record", "--frequency", "100000"}, 2, "--frequency: 100000 Hz is out of range"},
		{[]string{"record", "--unwind", "foo"}, 2, `--unwind: "foo" is not dwarf or fp`},
		{[]string{"record", "--stack-map-entries", "1"}, 2, "--stack-map-entries: 1 is out of range"},
		{[]string{"record", "--count-map-entries", "1"}, 2, "--count-map-entries: 1 is out of range"},
		{[]string{"record", "--pid", "4000000"}, 2, "--pid 4000000: no such process"},
		{[]string{"record", "-o", "/nonexistent/dir/x.pb.gz"}, 2, "--output: cannot create a file in /nonexistent/dir"},
		{[]string{"record", "--format", "svg"}, 2, "--format must be pprof or folded"},
		{[]string{"record", "--", "/nonexistent/command"}, 2, "command /nonexistent/command"},
		{[]string{"record", "--log-level", "loud"}, 2, "--log-level"},
		{[]string{"record", "--no-such-flag"}, 2, "unknown flag: --no-such-flag"},
		{[]string{"daemon", "--data-dir", data, "--stack-map-entries", "1"}, 2, "stack-map-entries: 1 is out of range"},
		{[]string{"daemon", "--data-dir", data, "--count-map-entries", "1"}, 2, "count-map-entries: 1 is out of range"},
		{[]string{"daemon", "--data-dir", data, "--unwind-table-size", "8GiB"}, 2, "unwind-table-size"},
		{[]string{"daemon", "--data-dir", data, "--frequency", "0"}, 2, "frequency: 0 Hz"},
		{[]string{"daemon", "--data-dir", data, "--listen", "localhost"}, 2, "listen: address localhost: missing port"},
		{[]string{"daemon", "--data-dir", data, "--tls-cert", "/etc/hostname"}, 2, "tls-cert and tls-key: give both or neither"},
		{[]string{"daemon", "--data-dir", data, "--tls-cert", "/etc/hostname", "--tls-key", "/etc/hostname"}, 2, "tls-cert/tls-key"},
		{[]string{"daemon", "--data-dir", data, "--auth-token-file", filepath.Join(dir, "missing")}, 2, "auth-token-file"},
		{[]string{"daemon", "--data-dir", data, "--auth-token-file", shortToken}, 2, "at least 16 characters"},
		{[]string{"daemon", "extra"}, 2, `unknown command "extra"`},
		{[]string{"no-such-command"}, 2, `unknown command "no-such-command"`},
		// At run time: the settings are right, the machine says no.
		{[]string{"daemon", "--data-dir", data, "--listen", busy}, 1, "listen:"},
	}
	for _, tt := range tests {
		out, code := runEmber(t, nil, tt.args...)
		if code != tt.code || !strings.Contains(out, tt.want) || strings.Contains(out, "goroutine ") {
			t.Errorf("ember %v: exit %d, output %q; want exit %d and %q", tt.args, code, out, tt.code, tt.want)
		}
	}
}

// listenBusyPort returns a loopback address already in use.
func listenBusyPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

// A failed recording keeps the file it would have replaced, whatever the
// reason, and leaves no temporary file behind.
func TestRecordKeepsOutputOnError(t *testing.T) {
	testenv.RequireRoot(t)
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	tests := []struct {
		name string
		cred *syscall.Credential
		args []string
		code int
	}{
		{"unprivileged", nobody, nil, 1},
		{"bad unwind", nil, []string{"--unwind", "foo"}, 2},
		{"missing pid", nil, []string{"-p", "4000000"}, 2},
		{"bad frequency", nil, []string{"-F", "100000"}, 2},
		{"missing command", nil, []string{"--", "/nonexistent/command"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Reachable and writable by nobody, as a user's own directory is.
			dir, err := os.MkdirTemp("", "ember-output")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			os.Chmod(dir, 0o777)
			out := filepath.Join(dir, "ember.pb.gz")
			const previous = "a profile from yesterday"
			if err := os.WriteFile(out, []byte(previous), 0o644); err != nil {
				t.Fatal(err)
			}
			os.Chown(out, 65534, 65534)
			args := append([]string{"record", "-d", "1s", "-o", out}, tt.args...)
			msg, code := runEmber(t, tt.cred, args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d: %s", code, tt.code, msg)
			}
			if raw, err := os.ReadFile(out); err != nil || string(raw) != previous {
				t.Errorf("the existing output became %q (err %v) after: %s", raw, err, msg)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("files left in the output's directory: %v", entries)
			}
		})
	}
}

// A recording that succeeds replaces the file through a rename, keeping
// what a symlink points to a symlink, and writes through to a device.
func TestRecordReplacesOutput(t *testing.T) {
	testenv.RequireBPF(t)
	dir := t.TempDir()
	real := filepath.Join(dir, "real.pb.gz")
	os.WriteFile(real, []byte("old"), 0o644)
	link := filepath.Join(dir, "link.pb.gz")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if msg, code := runEmber(t, nil, "record", "-d", "1s", "-o", link); code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symlink was replaced: %v %v", fi, err)
	}
	profiletest.Read(t, real)
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("files in the output's directory: %v", entries)
	}
	if msg, code := runEmber(t, nil, "record", "-d", "1s", "-o", "/dev/null"); code != 0 {
		t.Fatalf("-o /dev/null: exit %d: %s", code, msg)
	}
	if fi, err := os.Stat("/dev/null"); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Fatalf("/dev/null is no longer a device: %v %v", fi, err)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, code := runEmber(t, nil, args...)
		if code != 0 || !strings.HasPrefix(out, "ember ") || !strings.Contains(out, runtime.Version()) {
			t.Errorf("ember %v: exit %d, %q", args, code, out)
		}
	}
}

func TestVersionLine(t *testing.T) {
	stamped := &debug.BuildInfo{Main: debug.Module{Version: "v0.3.1"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.modified", Value: "true"}}}
	want := regexp.MustCompile(`^ember v0\.3\.1, commit 0123abcd \(modified\), built with go\S+ \w+/\w+$`)
	if got := versionLine(stamped, true); !want.MatchString(got) {
		t.Errorf("from build info: %q", got)
	}
	if got := versionLine(nil, false); !strings.HasPrefix(got, "ember (devel), commit unknown, built with go") {
		t.Errorf("without build info: %q", got)
	}
	version, commit = "v1.0.0", "fedcba98"
	defer func() { version, commit = "", "" }()
	if got := versionLine(stamped, true); !strings.HasPrefix(got, "ember v1.0.0, commit fedcba98, built with") {
		t.Errorf("from -ldflags: %q", got)
	}
}

// At its default log level the daemon says where it listens and what it
// keeps when it starts, and that it stopped.
func TestDaemonLogsStartAndStop(t *testing.T) {
	testenv.RequireBPF(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command(self, "daemon", "--data-dir", dir, "--listen", "127.0.0.1:0", "--interval", "2s",
		"--drain-interval", "500ms", "--max-disk", "64MiB", "--min-free-disk", "1MiB", "--allowed-host", "ember.example")
	cmd.Env = append(os.Environ(), "EMBER_TEST_RUN_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var log []string
	started := false
	timeout := time.After(60 * time.Second)
	for !started {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("the daemon ended before saying it started: %v", log)
			}
			log = append(log, line)
			started = strings.Contains(line, "ember daemon sampling") && strings.Contains(line, "api=127.0.0.1:") &&
				strings.Contains(line, "data_dir="+dir) && strings.Contains(line, "hz=99") &&
				strings.Contains(line, "interval=2s") && strings.Contains(line, "retention=168h")
		case <-timeout:
			t.Fatalf("no start line at the default log level within a minute: %v", log)
		}
	}
	// --allowed-host reaches the API's Host check.
	api := regexp.MustCompile(`api=(127\.0\.0\.1:\d+)`).FindStringSubmatch(log[len(log)-1])[1]
	for host, want := range map[string]int{"ember.example": http.StatusOK, "evil.example": http.StatusForbidden} {
		req, _ := http.NewRequest("GET", "http://"+api+"/healthz", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: %s, want %d", host, resp.Status, want)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	for line := range lines {
		log = append(log, line)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("daemon: %v", err)
	}
	if !strings.Contains(strings.Join(log, "\n"), "ember daemon stopped") {
		t.Errorf("no stop line at the default log level: %v", log)
	}
}

// The capabilities the README and deploy/ember.service give are enough to
// record as another user; without CAP_SYSLOG the error says what is
// missing. And a writable output in a directory Ember cannot write is
// rewritten in place, only once the profile is whole.
func TestRecordWithDocumentedCapabilities(t *testing.T) {
	testenv.RequireBPF(t)
	dir, err := os.MkdirTemp("", "ember-output")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	out := filepath.Join(dir, "ember.pb.gz")
	os.WriteFile(out, []byte("old"), 0o666)
	os.Chmod(out, 0o666)
	os.Chmod(dir, 0o755) // root's: nobody can create files here
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	documented := []uintptr{unix.CAP_BPF, unix.CAP_PERFMON, unix.CAP_SYSLOG, unix.CAP_SYS_PTRACE,
		unix.CAP_DAC_READ_SEARCH, unix.CAP_CHECKPOINT_RESTORE}
	raw, _ := os.ReadFile("/proc/sys/kernel/perf_event_paranoid")
	if paranoid, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil && paranoid >= 2 {
		// Here kernel addresses need CAP_SYSLOG.
		msg, code := runEmberWith(t, &syscall.SysProcAttr{Credential: nobody,
			AmbientCaps: []uintptr{unix.CAP_BPF, unix.CAP_PERFMON}}, "record", "-d", "1s", "-o", out)
		if code != 1 || !strings.Contains(msg, "CAP_SYSLOG") {
			t.Errorf("without CAP_SYSLOG: exit %d: %s", code, msg)
		}
		if raw, _ := os.ReadFile(out); string(raw) != "old" {
			t.Errorf("a failed run changed the output to %q", raw)
		}
	}
	// A loop of one-byte reads and writes, so that the second has
	// system calls to sample however quiet the host.
	syscalls := exec.Command("dd", "if=/dev/zero", "of=/dev/null", "bs=1")
	if err := syscalls.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { syscalls.Process.Kill(); syscalls.Wait() }()
	msg, code := runEmberWith(t, &syscall.SysProcAttr{Credential: nobody, AmbientCaps: documented},
		"record", "-d", "1s", "-o", out)
	if code != 0 {
		t.Fatalf("with the documented capabilities: exit %d: %s", code, msg)
	}
	p := profiletest.Read(t, out)
	var kernelFrames, kernelNamed int
	for _, loc := range p.Location {
		if loc.Mapping == nil || loc.Mapping.File != "[kernel.kallsyms]" {
			continue
		}
		for _, line := range loc.Line {
			kernelFrames++
			if line.Function != nil && line.Function.Name != "" && !strings.HasPrefix(line.Function.Name, "[") {
				kernelNamed++
			}
		}
	}
	if kernelFrames == 0 || kernelNamed*10 < kernelFrames*9 {
		t.Errorf("%d of %d kernel frames named in a whole-host profile: %s", kernelNamed, kernelFrames, msg)
	}
}
