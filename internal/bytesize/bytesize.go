// Package bytesize reads and prints sizes such as 2GiB for flags and
// configuration files.
package bytesize

import (
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Size is a number of bytes written as 2GiB, 512MiB, 1.5GB or 100000. It is
// a pflag.Value and reads from YAML.
type Size int64

var byteUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1e3, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1e6, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1e9, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1e12, "tib": 1 << 40,
}

// Parse reads a size: a number, optionally fractional, and a unit (B, K/KiB,
// M/MiB, G/GiB, T/TiB in powers of 1024; KB, MB, GB, TB in powers of 1000).
func Parse(s string) (Size, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(s)
	}
	n, err := strconv.ParseFloat(s[:i], 64)
	unit, ok := byteUnits[strings.ToLower(strings.TrimSpace(s[i:]))]
	if err != nil || !ok || n < 0 || n*unit > 1<<62 {
		return 0, fmt.Errorf("%q is not a size (try 2GiB, 512MiB or a number of bytes)", s)
	}
	return Size(n * unit), nil
}

func (b *Size) Set(s string) error {
	v, err := Parse(s)
	if err == nil {
		*b = v
	}
	return err
}

func (b Size) String() string {
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if int64(b) >= u.size && int64(b)%u.size == 0 {
			return fmt.Sprintf("%d%s", int64(b)/u.size, u.name)
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

func (b *Size) Type() string { return "size" }

func (b *Size) UnmarshalYAML(node *yaml.Node) error {
	return b.Set(node.Value)
}
