// Command unwindtables measures Ember's unwind tables over a set of files:
// the executable mappings of every running process (what the daemon would
// load) or every ELF file under some folders. It prints the number of
// distinct files (by build ID), their rows and BPF bytes, the largest
// tables and the time it took, for docs/benchmarks.md. bench/unwind.sh runs it.
//
//	go run ./bench/unwindtables -procs
//	go run ./bench/unwindtables /usr/bin /usr/lib
package main

import (
	"bufio"
	"debug/elf"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ember-profiler/ember/collector/unwind"
)

type result struct {
	path  string
	rows  int
	words int // rows and bucket index, as loaded into BPF
	fp    bool
	dur   time.Duration
}

func main() {
	procs := flag.Bool("procs", false, "measure the executable file mappings of running processes")
	flag.Parse()
	var paths []string
	if *procs {
		paths = processFiles()
	} else {
		for _, dir := range flag.Args() {
			filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					paths = append(paths, p)
				}
				return nil
			})
		}
	}
	seen := map[string]bool{}
	rules := map[unwind.Rule]uint16{}
	ruleID := func(r unwind.Rule) (uint16, error) {
		id, ok := rules[r]
		if !ok {
			if len(rules) >= 1<<16 {
				return 0, unwind.ErrNoRuleID
			}
			id = uint16(len(rules))
			rules[r] = id
		}
		return id, nil
	}
	var results []result
	var errs, notELF int
	start := time.Now()
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			errs++
			continue
		}
		ef, err := elf.NewFile(f)
		if err != nil {
			notELF++
			f.Close()
			continue
		}
		id, err := unwind.FileID(ef)
		if err != nil || seen[id] {
			f.Close()
			continue
		}
		seen[id] = true
		t0 := time.Now()
		tbl, err := unwind.Build(f)
		f.Close()
		if err != nil {
			errs++
			fmt.Fprintf(os.Stderr, "%s: %v\n", p, err)
			continue
		}
		words, _, err := tbl.Words(ruleID)
		if err != nil {
			errs++
			fmt.Fprintf(os.Stderr, "%s: %v\n", p, err)
			continue
		}
		results = append(results, result{p, len(tbl.Rows), len(words), tbl.FramePointers && len(tbl.Rows) == 0, time.Since(t0)})
	}
	total := time.Since(start)
	var rows, words, fp int
	for _, r := range results {
		rows += r.rows
		words += r.words
		if r.fp {
			fp++
		}
	}
	slices.SortFunc(results, func(a, b result) int { return b.rows - a.rows })
	fmt.Printf("files: %d paths, %d distinct ELF files (%d walked by frame pointers), %d not ELF, %d errors\n",
		len(paths), len(results), fp, notELF, errs)
	fmt.Printf("rows: %d, words with the bucket index: %d = %.1f MiB at %d bytes a word; %d distinct rules; built in %.2f s\n",
		rows, words, mib(words), wordBytes, len(rules), total.Seconds())
	for _, r := range results[:min(5, len(results))] {
		fmt.Printf("  %9d rows %6.1f MiB %7.0f ms  %s\n", r.rows, mib(r.words), float64(r.dur.Microseconds())/1000, r.path)
	}
}

// wordBytes is what a table word takes in BPF memory (collector/unwinder_maps.go).
const wordBytes = 4

func mib(words int) float64 {
	return float64(words*wordBytes) / (1 << 20)
}

// processFiles lists the files behind every executable mapping on the host,
// through /proc/PID/map_files so that each is the file the process maps.
func processFiles() []string {
	var out []string
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		if strings.Trim(d.Name(), "0123456789") != "" {
			continue
		}
		f, err := os.Open(filepath.Join("/proc", d.Name(), "maps"))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 6 || len(fields[1]) < 3 || fields[1][2] != 'x' || !strings.HasPrefix(fields[5], "/") {
				continue
			}
			out = append(out, filepath.Join("/proc", d.Name(), "map_files", fields[0]))
		}
		f.Close()
	}
	return out
}
