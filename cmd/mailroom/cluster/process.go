package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Back-off between restarts of a process that exited, doubling from
// minBackoff up to maxBackoff, as the kubelet's CrashLoopBackOff does
// (10 s to 5 min there; shorter here, where a restart is cheap and the
// chaos suite measures recovery). A process that ran for resetAfter
// starts again from minBackoff.
const (
	minBackoff = 500 * time.Millisecond
	maxBackoff = 8 * time.Second
	resetAfter = 30 * time.Second
	// stopTimeout is how long a process may drain after SIGTERM before
	// it is killed: above MAILROOM_SHUTDOWN_TIMEOUT (10 s) and the
	// telemetry flush (5 s).
	stopTimeout = 30 * time.Second
)

// proc is one supervised process: started, restarted after a back-off
// when it exits, stopped with SIGTERM.
type proc struct {
	name, kind string
	addr       string // gRPC or HTTP address, or the NATS client URL
	path       string // the binary
	args       []string
	env        []string
	logPath    string
	onChange   func() // called when pid changes

	mu       sync.Mutex
	cmd      *exec.Cmd
	pid      int
	started  time.Time
	stopping bool
	done     chan struct{} // closed when the process exited for the last time
	exit     Exit
	restarts int
}

func (p *proc) current() (pid int, started time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid, p.started
}

// supervise runs p until stop is called, restarting it when it exits.
func (p *proc) supervise(logf func(format string, a ...any)) error {
	p.done = make(chan struct{})
	if err := p.start(); err != nil {
		close(p.done)
		return err
	}
	go func() {
		defer close(p.done)
		backoff := minBackoff
		for {
			p.mu.Lock()
			cmd, started := p.cmd, p.started
			p.mu.Unlock()
			err := cmd.Wait()
			status := "exit status 0"
			if err != nil {
				status = err.Error()
			}
			p.mu.Lock()
			p.exit = Exit{Name: p.name, PID: p.pid, Status: status, Clean: err == nil}
			p.pid = 0
			stopping := p.stopping
			p.mu.Unlock()
			p.note("exited (%s)", status)
			p.onChange()
			if stopping {
				return
			}
			if time.Since(started) >= resetAfter {
				backoff = minBackoff
			}
			logf("%s (pid %d) exited (%s); restarting in %s", p.name, p.exit.PID, status, backoff)
			if !p.sleep(backoff) {
				return
			}
			backoff = min(2*backoff, maxBackoff)
			for {
				err := p.start()
				if err == nil {
					break
				}
				logf("%s: %v; trying again in %s", p.name, err, backoff)
				if !p.sleep(backoff) {
					return
				}
			}
			p.mu.Lock()
			p.restarts++
			p.mu.Unlock()
		}
	}()
	return nil
}

// sleep waits d, or returns false as soon as p is being stopped.
func (p *proc) sleep(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		stopping := p.stopping
		p.mu.Unlock()
		if stopping {
			return false
		}
		time.Sleep(min(100*time.Millisecond, time.Until(deadline)))
	}
	return true
}

func (p *proc) start() error {
	log, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close() // the child holds its own descriptor
	cmd := exec.Command(p.path, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Dir = filepath.Dir(p.logPath)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group: Ctrl-C on the supervisor's terminal
		// reaches the supervisor alone, which then stops everything in
		// order; and a process outlives nothing: if the supervisor dies,
		// its children are told to stop.
		Setpgid:   true,
		Pdeathsig: syscall.SIGTERM,
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopping {
		return fmt.Errorf("stopping")
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.path, err)
	}
	p.cmd, p.pid, p.started = cmd, cmd.Process.Pid, time.Now()
	fmt.Fprintf(log, "--- mailroom cluster: %s started, pid %d, at %s\n", p.name, p.pid, p.started.UTC().Format(time.RFC3339))
	go p.onChange()
	return nil
}

// note appends a line of the supervisor's to the process's log.
func (p *proc) note(format string, a ...any) {
	log, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	defer log.Close()
	fmt.Fprintf(log, "--- mailroom cluster: %s %s at %s\n", p.name, fmt.Sprintf(format, a...), time.Now().UTC().Format(time.RFC3339))
}

// stop sends SIGTERM, waits for the exit (SIGKILL after stopTimeout) and
// returns how the process ended.
func (p *proc) stop() Exit {
	p.mu.Lock()
	p.stopping = true
	pid := p.pid
	p.mu.Unlock()
	if pid != 0 {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		// A process stopped with SIGSTOP (the chaos suite) would never
		// see the SIGTERM.
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		p.mu.Lock()
		pid = p.pid
		p.mu.Unlock()
		if pid != 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		<-p.done
		p.mu.Lock()
		p.exit.Status += fmt.Sprintf(" (killed: still running %s after SIGTERM)", stopTimeout)
		p.exit.Clean = false
		p.mu.Unlock()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if pid == 0 {
		// Stopped between restarts: nothing ran to exit.
		return Exit{Name: p.name, Status: "not running (between restarts)", Clean: true}
	}
	return p.exit
}

// ctxSleep waits d or until ctx is done.
func ctxSleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
