// Command plot-soak draws bench/soak.sh's CSV as an SVG for
// docs/benchmarks.md: the daemon's memory (RSS, and RSS plus its BPF maps)
// and its CPU (share of one core, user + system, and BPF programs when
// kernel.bpf_stats_enabled was on) over the soak, one panel each.
//
//	go run ./bench/plot-soak bench/out/soak.csv > docs/soak.svg
package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
)

const (
	width, panelHeight = 760, 230
	left, right        = 60, 20
	top, gap, bottom   = 30, 50, 40
)

// series is one line of a panel.
type series struct {
	name   string
	color  string
	values []float64
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: plot-soak SOAK.csv > soak.svg")
		os.Exit(2)
	}
	cols, err := readCSV(os.Args[1])
	if err != nil {
		slog.Error("plot-soak", slog.String("file", os.Args[1]), slog.Any("err", err))
		os.Exit(1)
	}
	minutes := scale(cols["t_s"], 1.0/60)
	rss := scale(cols["rss_kib"], 1.0/1024)
	total := make([]float64, len(rss))
	for i := range rss {
		total[i] = rss[i] + at(cols["bpf_maps_kib"], i)/1024
	}
	height := top + 2*panelHeight + gap + bottom
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	panel(&b, top, "ember daemon memory (MiB)", minutes, []series{
		{"RSS + BPF maps", "#d62728", total},
		{"RSS", "#1f77b4", rss},
	})
	panel(&b, top+panelHeight+gap, "ember daemon CPU (% of one core, per 10 s)", minutes, []series{
		{"user + system", "#2ca02c", cols["cpu_pct"]},
		{"BPF programs", "#9467bd", cols["bpf_cpu_pct"]},
	})
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">minutes since the daemon started</text>`+"\n", left+(width-left-right)/2, height-8)
	b.WriteString("</svg>\n")
	if _, err := io.WriteString(os.Stdout, b.String()); err != nil {
		slog.Error("plot-soak: write", slog.Any("err", err))
		os.Exit(1)
	}
}

// panel draws one chart with its axes, ticks and legend at vertical offset y0.
func panel(b *strings.Builder, y0 int, title string, x []float64, lines []series) {
	xmax := maxOf(x)
	ymax := 0.0
	for _, s := range lines {
		ymax = math.Max(ymax, maxOf(s.values))
	}
	ystep := niceStep(ymax / 4)
	ymax = math.Max(ystep, math.Ceil(ymax/ystep)*ystep)
	if xmax <= 0 {
		xmax = 1
	}
	px := func(v float64) float64 { return left + v/xmax*float64(width-left-right) }
	py := func(v float64) float64 { return float64(y0+panelHeight) - v/ymax*float64(panelHeight) }
	fmt.Fprintf(b, `<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", left, y0-10, title)
	for i := 0; float64(i)*ystep <= ymax+ystep/2; i++ {
		v := float64(i) * ystep
		fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, width-right, py(v), py(v))
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, py(v)+4, label(v, ystep))
	}
	xstep := niceStep(xmax / 8)
	for i := 0; float64(i)*xstep <= xmax*1.0001; i++ {
		v := float64(i) * xstep
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", px(v), y0+panelHeight+16, label(v, xstep))
	}
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888"/>`+"\n", left, y0, width-left-right, panelHeight)
	for i, s := range lines {
		if len(s.values) == 0 {
			continue
		}
		var pts strings.Builder
		for j, v := range s.values {
			if j < len(x) && !math.IsNaN(v) {
				fmt.Fprintf(&pts, "%.1f,%.1f ", px(x[j]), py(v))
			}
		}
		fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", s.color, strings.TrimSpace(pts.String()))
		lx := left + 12
		ly := y0 + 16 + 16*i
		fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="3"/><text x="%d" y="%d">%s</text>`+"\n", lx, lx+20, ly-4, ly-4, s.color, lx+26, ly, s.name)
	}
}

// label formats a tick value with as many decimals as its step needs.
func label(v, step float64) string {
	return strconv.FormatFloat(v, 'f', max(0, int(-math.Floor(math.Log10(step)))), 64)
}

// niceStep rounds a raw tick spacing up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

func maxOf(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		if !math.IsNaN(x) {
			m = math.Max(m, x)
		}
	}
	return m
}

func at(v []float64, i int) float64 {
	if i < len(v) && !math.IsNaN(v[i]) {
		return v[i]
	}
	return 0
}

func scale(v []float64, k float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = x * k
	}
	return out
}

// readCSV returns the file's columns by header name; a cell that is not a
// number (an empty first CPU reading) becomes NaN and is left out.
func readCSV(path string) (map[string][]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("read csv: %w", err)
	}
	if len(rows) < 2 {
		return nil, fmt.Errorf("no samples in %s", path)
	}
	cols := map[string][]float64{}
	for _, row := range rows[1:] {
		for i, name := range rows[0] {
			v := math.NaN()
			if i < len(row) {
				if x, err := strconv.ParseFloat(row[i], 64); err == nil {
					v = x
				}
			}
			cols[name] = append(cols[name], v)
		}
	}
	for _, need := range []string{"t_s", "rss_kib", "cpu_pct"} {
		if _, ok := cols[need]; !ok {
			return nil, fmt.Errorf("column %s missing", need)
		}
	}
	return cols, nil
}
