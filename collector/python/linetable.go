package python

// lineAt returns the source line of the instruction at offset (code units;
// bytes for 3.8 and 3.9's f_lasti) from a code object's line table, or
// first when the table does not say. The formats are CPython's own:
// Objects/lnotab_notes.txt of each version.
func lineAt(minor int, table []byte, first int64, offset uint64) int64 {
	switch {
	case minor <= 9:
		return lnotabLine(table, first, offset)
	case minor == 10:
		return linetable310(table, first, offset*2)
	default:
		return locationTableLine(table, first, offset)
	}
}

// lnotabLine: pairs of (bytecode bytes, signed line delta), 3.8 and 3.9.
func lnotabLine(table []byte, first int64, addr uint64) int64 {
	line, at := first, uint64(0)
	for i := 0; i+1 < len(table); i += 2 {
		at += uint64(table[i])
		if at > addr {
			break
		}
		line += int64(int8(table[i+1]))
	}
	return line
}

// linetable310: pairs of (bytes the entry covers, signed line delta, -128
// for none), 3.10.
func linetable310(table []byte, first int64, addr uint64) int64 {
	line, end := first, uint64(0)
	for i := 0; i+1 < len(table); i += 2 {
		start := end
		end += uint64(table[i])
		delta := int8(table[i+1])
		cur := int64(-1)
		if delta != -128 {
			line += int64(delta)
			cur = line
		}
		if start <= addr && addr < end {
			if cur < 0 {
				return first
			}
			return cur
		}
	}
	return line
}

// locationTableLine reads 3.11+'s location table (PEP 657): entries of a
// header byte (1, code:4, code units - 1:3) and varint fields.
func locationTableLine(table []byte, first int64, offset uint64) int64 {
	line, end := first, uint64(0)
	i := 0
	varint := func() uint64 {
		var v uint64
		for shift := 0; i < len(table) && shift < 64; shift += 6 {
			b := table[i]
			i++
			v |= uint64(b&63) << shift
			if b&64 == 0 {
				break
			}
		}
		return v
	}
	svarint := func() int64 {
		v := varint()
		if v&1 != 0 {
			return -int64(v >> 1)
		}
		return int64(v >> 1)
	}
	for i < len(table) {
		h := table[i]
		i++
		if h&0x80 == 0 {
			continue // not an entry's start: corrupt, resynchronise
		}
		code := h >> 3 & 15
		start := end
		end += uint64(h&7) + 1
		known := true
		switch {
		case code == 15: // no location
			known = false
		case code == 14: // long form: line delta, end line, columns
			line += svarint()
			varint()
			varint()
			varint()
		case code == 13: // no columns
			line += svarint()
		case code >= 10: // one line form: line delta, two column bytes
			line += int64(code - 10)
			i += 2
		default: // short form: one column byte
			i++
		}
		if start <= offset && offset < end {
			if !known {
				return first
			}
			return line
		}
	}
	return line
}
