package testenv

import "testing"

// fakeTB records how a test was stopped instead of stopping this one.
type fakeTB struct {
	testing.TB
	skipped, failed bool
}

func (f *fakeTB) Helper()      {}
func (f *fakeTB) Skip(...any)  { f.skipped = true }
func (f *fakeTB) Fatal(...any) { f.failed = true }

func TestStop(t *testing.T) {
	for _, tc := range []struct {
		ci          string
		skip, fatal bool
	}{
		{ci: "", skip: true},
		{ci: "true", fatal: true},
		{ci: "1", fatal: true},
	} {
		t.Setenv("CI", tc.ci)
		f := &fakeTB{TB: t}
		stop(f, rootReason)
		if f.skipped != tc.skip || f.failed != tc.fatal {
			t.Errorf("CI=%q: skipped=%v failed=%v, want skipped=%v failed=%v",
				tc.ci, f.skipped, f.failed, tc.skip, tc.fatal)
		}
		if InCI() != (tc.ci != "") {
			t.Errorf("CI=%q: InCI()=%v", tc.ci, InCI())
		}
	}
}
