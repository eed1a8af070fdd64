package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// childCommand is the command of `ember record -- CMD`: started once the
// sampler runs, which follows it and its descendants from their fork.
type childCommand struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed when it has exited
	waitErr error
	signals chan os.Signal
}

// forwardedSignals are passed on to the command. SIGINT and SIGQUIT are
// passed on only when Ember is not in the terminal's foreground process
// group: there the terminal has sent them to the command already (it
// shares the group), and a second copy would make many programs give up
// their own clean shutdown.
var forwardedSignals = []os.Signal{syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGINT, syscall.SIGQUIT}

func startChild(argv []string) (*childCommand, error) {
	c := &childCommand{
		cmd:     exec.Command(argv[0], argv[1:]...),
		exited:  make(chan struct{}),
		signals: make(chan os.Signal, 4),
	}
	c.cmd.Stdin, c.cmd.Stdout, c.cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// Caught before the start, so none is lost or ends Ember meanwhile.
	signal.Notify(c.signals, forwardedSignals...)
	if err := c.cmd.Start(); err != nil {
		signal.Stop(c.signals)
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	fromTerminal := inForegroundGroup()
	go func() {
		c.waitErr = c.cmd.Wait()
		close(c.exited)
	}()
	go func() {
		for sig := range c.signals {
			if fromTerminal && (sig == syscall.SIGINT || sig == syscall.SIGQUIT) {
				continue
			}
			c.cmd.Process.Signal(sig) // fails only once it has exited
		}
	}()
	return c, nil
}

// wait waits for the command to exit and says how it ended.
func (c *childCommand) wait() string {
	<-c.exited
	name := c.cmd.Args[0]
	var exitErr *exec.ExitError
	switch {
	case c.waitErr == nil:
		return name + " exited with status 0"
	case errors.As(c.waitErr, &exitErr):
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Sprintf("%s was killed by signal %d (%s)", name, int(ws.Signal()), ws.Signal())
		}
		return fmt.Sprintf("%s exited with status %d", name, exitErr.ExitCode())
	default:
		return fmt.Sprintf("%s: %v", name, c.waitErr)
	}
}

// stopForwarding restores the default handling of the forwarded signals.
func (c *childCommand) stopForwarding() {
	signal.Stop(c.signals)
	close(c.signals)
}

// inForegroundGroup reports whether Ember runs in the foreground process
// group of its controlling terminal, where Ctrl-C and Ctrl-\ reach the
// whole group.
func inForegroundGroup() bool {
	tty, err := os.Open("/dev/tty")
	if err != nil {
		return false
	}
	defer tty.Close()
	fg, err := unix.IoctlGetInt(int(tty.Fd()), unix.TIOCGPGRP)
	return err == nil && fg == unix.Getpgrp()
}
