package bpf

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDefinesAreTied reads the sampler's #defines. A value user space needs
// is an enum that bpf2go generates, so every #define must be a kernel
// value (checked here against Go's), follow from such an enum, or be the
// program's alone. A new one fails this test until it is sorted into one
// of those, which is the moment to ask whether Go needs it.
func TestDefinesAreTied(t *testing.T) {
	kernel := map[string]int64{
		"EEXIST":        int64(unix.EEXIST),
		"ENOMEM":        int64(unix.ENOMEM),
		"EFAULT":        int64(unix.EFAULT),
		"E2BIG":         int64(unix.E2BIG),
		"TASK_COMM_LEN": int64(len(SamplerSampleValue{}.Comm)),
	}
	derived := map[string]bool{ // from generated enums, in C
		"MAX_USER_DEPTH": true, "STACK_ID_KERNEL_THREAD": true, "STACK_ID_EXITING": true, "STACK_ID_EXECVE": true,
		"ROW_PC_MASK": true, "BUCKET_ROW_STEPS": true,
		"CHUNK_WORDS": true, "BLOCK_WORDS": true, "CHUNK_BLOCKS": true,
	}
	programOnly := map[string]bool{
		"PF_KTHREAD": true, "PF_EXITING": true, // task flags, read in the kernel only
		"EXEC_SEQ_EXITED": true, // Go finds no image for it, as for any unknown one
		"WALK_RANGES":     true, "RANGE_CACHE_SLOTS": true, "RULE_MEMO_SETS": true, "RECENT_STACKS": true,
		"HASH_BASIS":         true,                     // Go follows stored hashes, never computes one
		"RT_CONSISTENT":      true,                     // glibc's r_debug state, read in the uprobe
		"VM_EXEC":            true,                     // a mapping's flag, read in the kernel only
		"MAX_RANGE_PREFIXES": true, "DEBRUIJN64": true, // how install.h splits ranges
		"ctx_reg": true, "kfunc_exists": true,
	}
	files, err := filepath.Glob("sampler/*.h")
	if err != nil {
		t.Fatal(err)
	}
	define := regexp.MustCompile(`^#define\s+(\w+)(\(|\s+)?(\S*)`)
	seen := 0
	for _, name := range append(files, "sampler.bpf.c") {
		raw, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(raw), "\n") {
			m := define.FindStringSubmatch(line)
			if m == nil || strings.HasPrefix(m[1], "EMBER_SAMPLER_") {
				continue
			}
			seen++
			switch id, value := m[1], m[3]; {
			case derived[id] || programOnly[id]:
			case kernel[id] != 0:
				if got, err := strconv.ParseInt(value, 0, 64); err != nil || got != kernel[id] {
					t.Errorf("%s: %s is %q in C, %d in Go", name, id, value, kernel[id])
				}
			default:
				t.Errorf("%s: #define %s is not tied to Go: if user space needs it, make it an enum value "+
					"bpf2go exports (a -type flag in bpf.go); otherwise list it in this test", name, id)
			}
		}
	}
	if seen < len(kernel)+len(derived) {
		t.Errorf("found %d #defines, fewer than the %d known: is the parse broken?", seen, len(kernel)+len(derived))
	}
}
