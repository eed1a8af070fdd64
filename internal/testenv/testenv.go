// Package testenv marks tests that need privileges the test binary may not
// have: they skip with a reason on a developer's machine and fail in CI, so a
// CI runner that silently lost root cannot turn the eBPF tests green.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

const (
	rootReason     = "needs root to load eBPF programs; run as root, or set CI to fail instead of skip"
	btfPath        = "/sys/kernel/btf/vmlinux"
	chromiumReason = "needs Chromium for the browser tests (apt-get install chromium, or set EMBER_CHROMIUM to a Chrome binary), " +
		"or set CI to fail instead of skip"
	btfReason = "needs kernel BTF (" + btfPath + ") to load CO-RE eBPF programs; " +
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

// RequireChromium returns the Chromium (or Chrome) binary the browser tests
// drive: $EMBER_CHROMIUM, else the first of the usual names on PATH. Without
// one the test stops: a skip outside CI, a failure inside it.
func RequireChromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("EMBER_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	stop(t, chromiumReason)
	return ""
}

func stop(t testing.TB, reason string) {
	t.Helper()
	if InCI() {
		t.Fatal(reason)
	} else {
		t.Skip(reason)
	}
}
