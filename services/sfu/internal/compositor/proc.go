package compositor

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// proc is one ffmpeg child: it dies with this process (Pdeathsig) and is always reaped
// (one goroutine waits for it; done closes when it has exited).
type proc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.ReadCloser
	stderr *tailBuffer
	done   chan struct{}
	err    error // set before done closes
}

// startProc starts bin with args; extra files become fd 3, 4, … in the child.
func startProc(bin string, args []string, extra ...*os.File) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.ExtraFiles = extra
	p := &proc{cmd: cmd, stderr: &tailBuffer{max: 4096}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFFmpeg, err)
	}
	// Our own pipe, not StdoutPipe: Wait (run concurrently below) must not close the read
	// end before everything the child wrote has been read.
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFFmpeg, err)
	}
	cmd.Stdout = w
	if err := cmd.Start(); err != nil {
		_, _ = r.Close(), w.Close()
		return nil, fmt.Errorf("%w: %v", ErrFFmpeg, err)
	}
	_ = w.Close()
	p.stdout = r
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// stop closes stdin (ffmpeg then flushes and exits), waits up to grace, then kills.
// It returns once the child is reaped.
func (p *proc) stop(grace time.Duration) {
	_ = p.stdin.Close()
	select {
	case <-p.done:
		_ = p.stdout.Close()
		return
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	_ = p.stdout.Close()
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// tailBuffer keeps the last max bytes of a child's stderr for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(b), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.buf))
}
