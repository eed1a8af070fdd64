package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/pprof/profile"
	"golang.org/x/sys/unix"

	"github.com/ember-profiler/ember/report"
)

// recordFormat is one value of ember record's --format: how a recording is
// written, and where when --output is not given.
type recordFormat struct {
	name          string
	defaultOutput string
	write         func(io.Writer, *profile.Profile) error
}

// recordFormats are --format's values, the default first. What a format
// computes from the profile comes from package report, which the web API
// shares.
func recordFormats() []recordFormat {
	return []recordFormat{
		{"pprof", "ember.pb.gz", func(w io.Writer, p *profile.Profile) error { return p.Write(w) }},
		{"folded", "ember.folded", report.WriteFolded},
	}
}

// findRecordFormat is the format named name.
func findRecordFormat(name string) (recordFormat, bool) {
	for _, f := range recordFormats() {
		if f.name == name {
			return f, true
		}
	}
	return recordFormat{}, false
}

// recordFormatNames lists the formats for help and errors: "pprof or folded".
func recordFormatNames() string {
	var names []string
	for _, f := range recordFormats() {
		names = append(names, f.name)
	}
	return strings.Join(names, " or ")
}

// output is where a recording goes. A regular file is written under a
// temporary name in the same directory and renamed over the target only
// once the profile is complete, so a failed or interrupted run never
// leaves the target empty or half written, and an existing file survives.
type output struct {
	target string   // what the user named
	tmp    *os.File // nil for standard output and when direct
	direct bool     // write to target itself: a device, a FIFO, or a file in a directory Ember cannot write
	done   bool
}

// openOutput prepares the output before any work, so that an unwritable
// place fails at once. It neither creates nor truncates the target.
func openOutput(path string) (*output, error) {
	if path == "-" {
		return &output{target: path}, nil
	}
	target := path
	if resolved, err := filepath.EvalSymlinks(path); err == nil {
		target = resolved // replace the file a symlink names, keep the link
	}
	if fi, err := os.Stat(target); err == nil && !fi.Mode().IsRegular() {
		if fi.IsDir() {
			return nil, fmt.Errorf("%s is a directory", path)
		}
		// /dev/null, a FIFO: written in place at the end, never replaced.
		return &output{target: target, direct: true}, nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	dir := filepath.Dir(target)
	tmp, err := createTemp(dir, "."+filepath.Base(target)+".tmp-")
	if errors.Is(err, fs.ErrPermission) && unix.Access(target, unix.W_OK) == nil {
		// A writable file in a directory that is not: rewritten in place,
		// still only once the profile is whole.
		return &output{target: target, direct: true}, nil
	}
	if err != nil {
		var pathErr *fs.PathError
		if errors.As(err, &pathErr) {
			err = pathErr.Err // its path is the temporary name, unknown to the user
		}
		return nil, fmt.Errorf("cannot create a file in %s: %w", dir, err)
	}
	return &output{target: target, tmp: tmp}, nil
}

// createTemp creates a new file with mode 0666 less the umask, as
// os.Create would: os.CreateTemp's 0600 would surprise whoever shares the
// profile.
func createTemp(dir, prefix string) (*os.File, error) {
	for range 100 {
		var suffix [6]byte
		rand.Read(suffix[:])
		name := filepath.Join(dir, prefix+hex.EncodeToString(suffix[:]))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, err
	}
	return nil, fmt.Errorf("create a temporary file in %s: too many collisions", dir)
}

// commit writes the profile with write and puts it in place.
func (o *output) commit(write func(io.Writer) error) error {
	o.done = true
	switch {
	case o.target == "-":
		return write(os.Stdout)
	case o.direct:
		// O_TRUNC: a no-op on devices and FIFOs, needed for a regular file.
		f, err := os.OpenFile(o.target, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			return err
		}
		if err := write(f); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	err := write(o.tmp)
	if err == nil {
		err = o.tmp.Sync()
	}
	if cerr := o.tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(o.tmp.Name(), o.target)
	}
	if err != nil {
		os.Remove(o.tmp.Name())
	}
	return err
}

// abort removes the temporary file unless the output was committed; the
// target is untouched.
func (o *output) abort() {
	if o.done || o.tmp == nil {
		return
	}
	o.done = true
	o.tmp.Close()
	os.Remove(o.tmp.Name())
}
