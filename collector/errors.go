package collector

import (
	"errors"
	"fmt"
)

// Errors a caller can tell apart, each with what to do about it.
var (
	// ErrNotPermitted: the process lacks root or CAP_BPF + CAP_PERFMON. The
	// other capabilities are what the README's measurements found needed.
	ErrNotPermitted = errors.New("permission denied: sampling needs root, or CAP_BPF and CAP_PERFMON, " +
		"with CAP_SYSLOG to name kernel frames (or kernel.perf_event_paranoid 1 or less), CAP_SYS_PTRACE to read " +
		"other users' processes, and CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN for their mapped files")
	// ErrNoBTF: the kernel does not expose its BTF, which the CO-RE program needs.
	ErrNoBTF = errors.New("kernel BTF not found at /sys/kernel/btf/vmlinux: Ember needs a kernel built with CONFIG_DEBUG_INFO_BTF=y")
	// ErrPerfUnavailable: the software cpu-clock perf event cannot be opened.
	ErrPerfUnavailable = errors.New("the cpu-clock perf event is not available on this kernel (CONFIG_PERF_EVENTS)")
	// ErrNoSuchProcess: a PID given to filter on does not exist.
	ErrNoSuchProcess = errors.New("no such process")
)

// ConfigError names the setting that is wrong.
type ConfigError struct {
	Field string
	Msg   string
}

func (e *ConfigError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Msg) }
