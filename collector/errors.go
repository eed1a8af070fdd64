package collector

import (
	"errors"
	"fmt"
)

// Errors a caller can tell apart, each with what to do about it.
var (
	// ErrNotPermitted: the process lacks root or CAP_BPF + CAP_PERFMON.
	ErrNotPermitted = errors.New("permission denied: sampling needs root, or CAP_BPF and CAP_PERFMON (plus CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE to read other processes' mapped files)")
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
