package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Reload is what runs after a renewal so that the software using the
// certificate picks it up: a command, a signal to a process whose PID is
// in a file, or both (command first). The zero value does nothing.
type Reload struct {
	Command []string      `yaml:"command"`
	Signal  string        `yaml:"signal"`   // HUP, USR1, USR2, INT or TERM
	PIDFile string        `yaml:"pid_file"` // with Signal
	Timeout time.Duration `yaml:"timeout"`  // for Command; zero: 60 s
}

var signals = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2,
	"INT": syscall.SIGINT, "TERM": syscall.SIGTERM,
}

// Check reports a hook that cannot work, before it is needed.
func (r Reload) Check() error {
	if r.Signal == "" && r.PIDFile == "" {
		return nil
	}
	if r.Signal == "" || r.PIDFile == "" {
		return errors.New("a reload signal needs both signal and pid_file")
	}
	if _, ok := signals[strings.TrimPrefix(strings.ToUpper(r.Signal), "SIG")]; !ok {
		return fmt.Errorf("unknown reload signal %q (HUP, USR1, USR2, INT, TERM)", r.Signal)
	}
	return nil
}

// Run runs the hook.
func (r Reload) Run(ctx context.Context) error {
	if err := r.Check(); err != nil {
		return err
	}
	if len(r.Command) > 0 {
		timeout := r.Timeout
		if timeout == 0 {
			timeout = time.Minute
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, r.Command[0], r.Command[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("reload command %q: %w: %s", strings.Join(r.Command, " "), err, strings.TrimSpace(string(out)))
		}
	}
	if r.Signal != "" {
		b, err := os.ReadFile(r.PIDFile)
		if err != nil {
			return fmt.Errorf("reload: %w", err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			return fmt.Errorf("reload: %s holds no process ID", r.PIDFile)
		}
		sig := signals[strings.TrimPrefix(strings.ToUpper(r.Signal), "SIG")]
		if err := syscall.Kill(pid, sig); err != nil {
			return fmt.Errorf("reload: signal %s to %d: %w", r.Signal, pid, err)
		}
	}
	return nil
}
