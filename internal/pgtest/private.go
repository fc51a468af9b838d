package pgtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// Cluster is a PostgreSQL server of a test's own: a cluster made with
// initdb in a temporary directory, listening on a loopback port of its own,
// that the test may stop and start as a database host restarting would,
// without disturbing the shared server other tests use.
type Cluster struct {
	t    testing.TB
	bin  string // directory of initdb and pg_ctl
	dir  string // the cluster's data directory
	port int
	as   []string // runuser prefix when running as root: PostgreSQL refuses root
	// URL connects to the cluster's postgres database as postgres.
	URL string
}

// Private makes, starts and returns a private cluster, stopped and removed
// when the test ends. It is skipped and failed as URL is: PostgreSQL tests
// run where MTLSID_TEST_POSTGRES is set, and there PostgreSQL's programs
// must be installed.
func Private(t testing.TB) *Cluster {
	t.Helper()
	if os.Getenv(EnvVar) == "" {
		t.Skip("PostgreSQL tests skipped: set " + EnvVar + "=postgres://postgres@127.0.0.1:5432/test?sslmode=disable to run them")
	}
	bin, err := binDir()
	if err != nil {
		t.Fatalf("%s is set but %v", EnvVar, err)
	}
	root, err := os.MkdirTemp("", "mtlsid-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	c := &Cluster{t: t, bin: bin, dir: filepath.Join(root, "data")}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, PostgreSQL needs the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chmod(root, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(root, uid, gid); err != nil {
			t.Fatal(err)
		}
		c.as = []string{"runuser", "-u", "postgres", "--"}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	c.run("initdb", "-D", c.dir, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
	c.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
	c.Start()
	t.Cleanup(func() {
		cmd := c.cmd("pg_ctl", "-D", c.dir, "-m", "immediate", "-w", "stop")
		_ = cmd.Run() // already stopped is fine
	})
	return c
}

// Start starts the cluster and waits until it accepts connections.
func (c *Cluster) Start() {
	c.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", c.port, filepath.Dir(c.dir))
	c.run("pg_ctl", "-D", c.dir, "-l", filepath.Join(filepath.Dir(c.dir), "log"), "-o", opts, "-w", "start")
}

// Stop stops the cluster the way a host's shutdown does (fast: open
// sessions are ended, transactions in progress rolled back).
func (c *Cluster) Stop() {
	c.t.Helper()
	c.run("pg_ctl", "-D", c.dir, "-m", "fast", "-w", "stop")
}

func (c *Cluster) cmd(prog string, args ...string) *exec.Cmd {
	argv := append(slices.Clone(c.as), filepath.Join(c.bin, prog))
	argv = append(argv, args...)
	return exec.Command(argv[0], argv[1:]...)
}

func (c *Cluster) run(prog string, args ...string) {
	c.t.Helper()
	if out, err := c.cmd(prog, args...).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(filepath.Dir(c.dir), "log"))
		c.t.Fatalf("%s: %v\n%s\n%s", prog, err, out, log)
	}
}

// binDir finds PostgreSQL's server programs: on PATH, else Debian's
// /usr/lib/postgresql/<version>/bin, the newest version.
func binDir() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if _, err := os.Stat(filepath.Join(filepath.Dir(p), "initdb")); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return va - vb
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	return "", fmt.Errorf("PostgreSQL's initdb and pg_ctl were not found (on PATH or in /usr/lib/postgresql/*/bin)")
}
