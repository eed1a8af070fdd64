package schema

import (
	"errors"
	"fmt"
)

// The labels Ember puts on every sample it takes.
const (
	LabelPID       = "pid"       // numeric label; the store keeps it as a string
	LabelTID       = "tid"       // numeric label; not stored (too many values)
	LabelComm      = "comm"      // the thread's command name
	LabelExe       = "exe"       // the executable's path
	LabelCgroup    = "cgroup"    // the process's cgroup path
	LabelContainer = "container" // the container ID, when there is one
	// LabelThreadState says why a sample of time off the CPU was off it:
	// runnable (preempted), sleeping (S), disk (D) or other.
	LabelThreadState = "thread_state"
)

// StoredStringLabels are the string labels of a sample that the store
// keeps, besides pid; tid is dropped.
var StoredStringLabels = []string{LabelComm, LabelExe, LabelCgroup, LabelContainer, LabelThreadState}

// Reserved reports whether name is one of the labels Ember sets on
// samples, which a host label must not hide.
func Reserved(name string) bool {
	switch name {
	case LabelPID, LabelTID, LabelComm, LabelExe, LabelCgroup, LabelContainer, LabelThreadState:
		return true
	}
	return false
}

// MaxLabelNameBytes is the longest label name a query may name.
const MaxLabelNameBytes = 128

// ValidLabelName reports whether name follows the Prometheus label name
// syntax, [a-zA-Z_][a-zA-Z0-9_]*, which Ember's labels follow.
func ValidLabelName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !IsLabelChar(name[i], i == 0) {
			return false
		}
	}
	return true
}

// IsLabelChar reports whether c may appear in a label name, first or not.
func IsLabelChar(c byte, first bool) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
}

// Errors of CheckHostLabel.
var (
	ErrLabelName     = errors.New("names are letters, digits and underscores, not starting with a digit")
	ErrReservedLabel = errors.New("reserved for Ember's own labels")
)

// CheckHostLabel says why name cannot be a host label (one a user sets on
// every sample of a host), or returns nil.
func CheckHostLabel(name string) error {
	if !ValidLabelName(name) {
		return fmt.Errorf("label %q: %w", name, ErrLabelName)
	}
	if Reserved(name) {
		return fmt.Errorf("label %q: %w", name, ErrReservedLabel)
	}
	return nil
}
