package testenv

import (
	"os/exec"
	"testing"
)

const goToolReason = "needs the go tool on PATH to list the module's packages; install Go, or set CI to fail instead of skip"

// RequireGoTool returns the path of the go command, which `go test` puts
// first on PATH. Without one the test stops: a skip outside CI, a failure
// inside it.
func RequireGoTool(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("go")
	if err != nil {
		stop(t, goToolReason)
	}
	return path
}
