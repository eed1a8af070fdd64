package symbolizer

import (
	"fmt"
	"strconv"
	"strings"
)

// ByteSize is a size in bytes that reads and prints with binary units
// ("256MiB", "1GiB", "64KiB", or a plain number of bytes), for the
// --symbol-cache-size flag. It satisfies pflag.Value.
type ByteSize int64

var byteUnits = []struct {
	suffix string
	shift  uint
}{
	{"GiB", 30}, {"MiB", 20}, {"KiB", 10},
	{"G", 30}, {"M", 20}, {"K", 10}, {"B", 0},
}

func (b *ByteSize) String() string {
	n := int64(*b)
	for _, u := range byteUnits[:3] {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// Set parses a size such as "256MiB".
func (b *ByteSize) Set(s string) error {
	text := strings.TrimSpace(s)
	shift := uint(0)
	for _, u := range byteUnits {
		if rest, ok := strings.CutSuffix(text, u.suffix); ok {
			text, shift = strings.TrimSpace(rest), u.shift
			break
		}
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)>>shift {
		return fmt.Errorf("%q is not a size like 256MiB", s)
	}
	*b = ByteSize(n << shift)
	return nil
}

// Type names the value in flag help.
func (b *ByteSize) Type() string { return "size" }
