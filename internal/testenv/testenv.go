// Package testenv marks tests that need privileges the test binary may not
// have: they skip with a reason on a developer's machine and fail in CI, so a
// CI runner that silently lost root cannot turn the eBPF tests green.
package testenv

import (
	"os"
	"testing"
)

const (
	rootReason = "needs root to load eBPF programs; run as root, or set CI to fail instead of skip"
	btfPath    = "/sys/kernel/btf/vmlinux"
	btfReason  = "needs kernel BTF (" + btfPath + ") to load CO-RE eBPF programs; " +
		"use a kernel built with CONFIG_DEBUG_INFO_BTF, or set CI to fail instead of skip"
)

// InCI reports whether the tests run in CI, where a missing privilege is a
// failure rather than a reason to skip. CI is set by GitHub Actions, GitLab
// and most other runners.
func InCI() bool {
	return os.Getenv("CI") != ""
}

// RequireRoot stops the test unless it runs as root: a skip outside CI, a
// failure inside it.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		stop(t, rootReason)
	}
}

// RequireBPF is RequireRoot plus a check that the kernel exposes the BTF
// that CO-RE programs are relocated against.
func RequireBPF(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	if _, err := os.Stat(btfPath); err != nil {
		stop(t, btfReason)
	}
}

func stop(t testing.TB, reason string) {
	t.Helper()
	if InCI() {
		t.Fatal(reason)
	} else {
		t.Skip(reason)
	}
}
