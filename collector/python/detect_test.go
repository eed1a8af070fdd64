package python

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ember-profiler/ember/internal/testenv"
	"github.com/ember-profiler/ember/model"
)

// libpython returns the pyenv build's libpython3.minor, or skips (fails
// in CI).
func libpython(t *testing.T, minor int) string {
	t.Helper()
	root := os.Getenv("PYENV_ROOT")
	if root == "" {
		home, _ := os.UserHomeDir()
		root = filepath.Join(home, ".pyenv")
	}
	libs, _ := filepath.Glob(filepath.Join(root, "versions", fmt.Sprintf("3.%d.*", minor), "lib", fmt.Sprintf("libpython3.%d.so.1.0", minor)))
	if len(libs) == 0 {
		if testenv.InCI() {
			t.Fatalf("no pyenv build of CPython 3.%d", minor)
		}
		t.Skipf("no pyenv build of CPython 3.%d", minor)
	}
	return libs[len(libs)-1]
}

// mapped is a process that maps path's executable segment at base, as
// /proc/PID/maps would say, with the file held open.
func mapped(t *testing.T, path string, base uint64) *model.Process {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	ef, err := elf.NewFile(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 {
			off := p.Off &^ 0xfff
			start := base + p.Vaddr&^0xfff
			return &model.Process{PID: 1, Mappings: []model.Mapping{{Start: start, Limit: start + p.Memsz, Offset: off, Path: path, File: f}}}
		}
	}
	t.Fatalf("%s has no executable segment", path)
	return nil
}

// TestDetect: each pyenv build's libpython gives its version, where
// _PyRuntime and the eval loop are at run time (the ELF address plus the
// load base), and a file that claims a version Ember does not know is
// refused, not guessed.
func TestDetect(t *testing.T) {
	const base = 0x7f0000000000
	for minor := 8; minor <= 13; minor++ {
		t.Run(fmt.Sprintf("3.%d", minor), func(t *testing.T) {
			lib := libpython(t, minor)
			in, err := Detect(mapped(t, lib, base))
			if err != nil {
				t.Fatal(err)
			}
			ef, _ := elf.Open(lib)
			defer ef.Close()
			syms, _ := ef.DynamicSymbols()
			for _, s := range syms {
				switch s.Name {
				case "_PyRuntime":
					if in.Runtime != base+s.Value {
						t.Errorf("_PyRuntime at %#x, want %#x", in.Runtime, base+s.Value)
					}
				case "_PyEval_EvalFrameDefault":
					if !in.InEval(base+s.Value+1, true) || in.InEval(base+s.Value, true) {
						t.Errorf("eval loop ranges %x do not hold %#x", in.Eval, base+s.Value)
					}
				}
			}
			if in.Layout.Minor != minor || in.CodeType == 0 {
				t.Errorf("minor %d, code type %#x", in.Layout.Minor, in.CodeType)
			}
		})
	}
	t.Run("unknown version", func(t *testing.T) {
		// 3.10 has no Py_Version: the file name is all it says.
		lib := filepath.Join(t.TempDir(), "libpython3.99.so.1.0")
		raw, err := os.ReadFile(libpython(t, 10))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(lib, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Detect(mapped(t, lib, base)); !errors.Is(err, ErrUnknownVersion) {
			t.Errorf("3.99: %v, want ErrUnknownVersion", err)
		}
	})
	t.Run("stripped", func(t *testing.T) {
		strip, err := exec.LookPath("strip")
		if err != nil {
			t.Skip("no strip")
		}
		lib := filepath.Join(t.TempDir(), "libpython3.12.so.1.0")
		if out, err := exec.Command(strip, "--strip-all", "-o", lib, libpython(t, 12)).CombinedOutput(); err != nil {
			t.Fatalf("strip: %v\n%s", err, out)
		}
		in, err := Detect(mapped(t, lib, base))
		if err != nil {
			t.Fatal(err)
		}
		if in.Layout.Minor != 12 || in.Runtime == 0 || in.CodeType == 0 || len(in.Eval) == 0 {
			t.Errorf("stripped 3.12: %+v", in)
		}
	})
	t.Run("not python", func(t *testing.T) {
		if _, err := Detect(&model.Process{Mappings: []model.Mapping{{Path: "/usr/bin/bash"}}}); !errors.Is(err, ErrNotPython) {
			t.Errorf("bash: %v", err)
		}
	})
}

// TestDebugOffsetsMatchTable: the _Py_DebugOffsets 3.13 publishes (in its
// _PyRuntime's initial value, in the file) say what the table says.
func TestDebugOffsetsMatchTable(t *testing.T) {
	ef, err := elf.Open(libpython(t, 13))
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	syms, _ := ef.DynamicSymbols()
	var raw []byte
	for _, s := range syms {
		if s.Name != "_PyRuntime" {
			continue
		}
		for _, sec := range ef.Sections {
			if sec.Flags&elf.SHF_ALLOC != 0 && sec.Type != elf.SHT_NOBITS && s.Value >= sec.Addr && s.Value+DebugOffsetsBytes <= sec.Addr+sec.Size {
				raw = make([]byte, DebugOffsetsBytes)
				if _, err := sec.ReadAt(raw, int64(s.Value-sec.Addr)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if raw == nil {
		t.Fatal("no _PyRuntime data in libpython3.13")
	}
	want, _ := LayoutFor(13)
	got := want
	if err := got.ApplyDebugOffsets(raw); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("debug offsets give\n%+v\nthe table says\n%+v", got, want)
	}
	other := want
	other.Minor = 12
	if err := other.ApplyDebugOffsets(raw); err == nil {
		t.Error("3.13's debug offsets applied to 3.12")
	}
}

// TestDetectorRemembersFile: a file read once places its CPython right in
// every process that maps it, wherever it is loaded.
func TestDetectorRemembersFile(t *testing.T) {
	lib := libpython(t, 12)
	var d Detector
	const a, b = 0x7f0000000000, 0x7f1234560000
	first, err := d.Detect(mapped(t, lib, a))
	if err != nil {
		t.Fatal(err)
	}
	second, err := d.Detect(mapped(t, lib, b))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.byFile) != 1 {
		t.Errorf("%d files remembered, want 1", len(d.byFile))
	}
	if second.Runtime-first.Runtime != b-a || second.CodeType-first.CodeType != b-a || second.Eval[0].Start-first.Eval[0].Start != b-a {
		t.Errorf("second process's CPython at %#x, first's at %#x: not moved by the load base", second.Runtime, first.Runtime)
	}
	if second.Layout.Minor != 12 {
		t.Errorf("minor %d, want 12", second.Layout.Minor)
	}
}
