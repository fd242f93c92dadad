package etcdtest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestMain(m *testing.M) {
	MemberMain()
	os.Exit(m.Run())
}

// TestMemberProcess: a member process serves clients, keeps its data across
// a SIGKILL and a restart on the same data dir and ports, and exits cleanly
// and promptly on SIGTERM even with a watch open.
func TestMemberProcess(t *testing.T) {
	dir, client, peer := t.TempDir(), freePort(t), freePort(t)
	start := func() *exec.Cmd {
		t.Helper()
		args := MemberCommand(dir, client, peer)
		cmd := exec.Command(args[0], args[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		ready := make(chan string, 1)
		go func() {
			buf := make([]byte, 256)
			n, _ := out.Read(buf)
			ready <- string(buf[:n])
			for { // keep draining, so the member never blocks on its output
				if _, err := out.Read(buf); err != nil {
					return
				}
			}
		}()
		select {
		case line := <-ready:
			if len(line) < len(MemberReady) || line[:len(MemberReady)] != MemberReady {
				t.Fatalf("member printed %q, want %q first", line, MemberReady)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("member not ready after 20s")
		}
		return cmd
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	m := start()
	if _, err := cli.Put(ctx, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	m.Process.Signal(syscall.SIGKILL)
	m.Wait()
	if c, err := net.DialTimeout("tcp", client, time.Second); err == nil {
		c.Close()
		t.Fatal("the killed member still accepts clients")
	}

	m = start()
	resp, err := cli.Get(ctx, "k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v1" {
		t.Fatalf("after a SIGKILL and a restart: get k = %v, %v; want v1", resp, err)
	}
	wch := cli.Watch(ctx, "k")
	if _, err := cli.Put(ctx, "k", "v2"); err != nil {
		t.Fatal(err)
	}
	<-wch
	stopped := time.Now()
	m.Process.Signal(syscall.SIGTERM)
	if err := m.Wait(); err != nil {
		t.Fatalf("member after SIGTERM: %v, want a clean exit", err)
	}
	if took := time.Since(stopped); took > 3*time.Second {
		t.Fatalf("member took %s to stop on SIGTERM", took)
	}
}
