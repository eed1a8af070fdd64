package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// PyenvPython returns pyenv's newest build of CPython 3.minor, or "" when
// there is none, with the pyenv root it looked under.
func PyenvPython(minor int) (exe, root string) {
	root = os.Getenv("PYENV_ROOT")
	if root == "" {
		if out, err := exec.Command("pyenv", "root").Output(); err == nil {
			root = strings.TrimSpace(string(out))
		} else {
			home, _ := os.UserHomeDir()
			root = filepath.Join(home, ".pyenv")
		}
	}
	exes, _ := filepath.Glob(filepath.Join(root, "versions", fmt.Sprintf("3.%d.*", minor), "bin", fmt.Sprintf("python3.%d", minor)))
	if len(exes) == 0 {
		return "", root
	}
	return exes[len(exes)-1], root
}
