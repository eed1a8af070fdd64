package export

import (
	"reflect"
	"testing"
	"time"
)

// Exporters that export the same labels get the same series, split once;
// a policy that exports other labels gets its own; both are what the
// policy's own split makes.
func TestSharedSplitOncePerPolicy(t *testing.T) {
	p := testInterval(time.Unix(1_700_000_000, 0), 1)
	shared := Share(nil)
	comm, err := newLabelPolicy("{comm}", false)
	if err != nil {
		t.Fatal(err)
	}
	comm2, _ := newLabelPolicy("{comm}", false)
	withPID, _ := newLabelPolicy("{comm}", true)

	a, b, c := shared.split(p, comm), shared.split(p, comm2), shared.split(p, withPID)
	if len(a) == 0 || &a[0] != &b[0] {
		t.Errorf("the same policy split twice: %d series at %p and %p", len(a), a, b)
	}
	if !reflect.DeepEqual(a, comm.split(p)) || !reflect.DeepEqual(c, withPID.split(p)) {
		t.Error("a shared split differs from the policy's own")
	}
	if len(a) != 2 || len(c) != 3 {
		t.Errorf("series: %d by comm (want 2), %d with pid (want 3)", len(a), len(c))
	}
	// Another interval is split anew, and the bound holds.
	for i := range 2 * sharedSplits {
		q := testInterval(time.Unix(1_700_000_010+int64(i)*10, 0), i)
		if s := shared.split(q, comm); len(s) == 0 || &s[0] == &a[0] {
			t.Fatalf("interval %d got the first one's series", i)
		}
	}
	if len(shared.splits) > sharedSplits {
		t.Errorf("%d splits held, bound %d", len(shared.splits), sharedSplits)
	}
}
