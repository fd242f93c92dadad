package etcdtest

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// MemberEnv is the environment variable that makes a test binary run an etcd
// member (see MemberMain and MemberCommand) instead of its tests.
const MemberEnv = "SWITCHYARD_ETCD_MEMBER"

// MemberReady is what a member process prints once it serves clients.
const MemberReady = "etcd member ready"

// memberSpec is a member process's configuration, JSON in MemberEnv.
type memberSpec struct {
	Dir    string // data directory: a restart on the same one keeps the data
	Client string // host:port for clients
	Peer   string // host:port for peers
}

// MemberCommand returns the command line that runs the current test binary
// (os.Args[0]) as a one-member etcd cluster with its data in dir, serving
// clients on clientAddr and peers on peerAddr (host:port), until SIGTERM or
// SIGINT. Started again on the same dir and addresses it is the same cluster
// with its data. The binary's TestMain must call MemberMain first. This lets
// a test run etcd where the test process itself cannot, e.g. inside a network
// namespace with internal/lab's NS.Start.
func MemberCommand(dir, clientAddr, peerAddr string) []string {
	spec, _ := json.Marshal(memberSpec{Dir: dir, Client: clientAddr, Peer: peerAddr})
	return []string{"env", MemberEnv + "=" + string(spec), os.Args[0]}
}

// MemberMain returns at once unless MemberEnv is set; then it runs the etcd
// member that MemberCommand describes until SIGTERM or SIGINT and exits the
// process (status 0 after a clean stop, 1 on failure). Call it first in
// TestMain, before anything that only the tests need.
func MemberMain() {
	raw, ok := os.LookupEnv(MemberEnv)
	if !ok {
		return
	}
	if err := runMember(raw); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runMember(raw string) error {
	var spec memberSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		return fmt.Errorf("etcdtest: %s: %w", MemberEnv, err)
	}
	return RunMember(spec.Dir, spec.Client, spec.Peer)
}

// RunMember runs a one-member etcd cluster with its data in dir, serving
// clients on clientAddr and peers on peerAddr (host:port, plain HTTP), until
// SIGTERM or SIGINT, and prints MemberReady once it serves clients. Started
// again on the same dir and addresses it is the same cluster with its data.
// MemberMain runs it in a test binary; deploy/demo-etcd, for make
// demo-cluster, in a program of its own.
func RunMember(dir, clientAddr, peerAddr string) error {
	spec := memberSpec{Dir: dir, Client: clientAddr, Peer: peerAddr}
	cu, err := url.Parse("http://" + spec.Client)
	if err != nil {
		return fmt.Errorf("etcdtest: client address %q: %w", spec.Client, err)
	}
	pu, err := url.Parse("http://" + spec.Peer)
	if err != nil {
		return fmt.Errorf("etcdtest: peer address %q: %w", spec.Peer, err)
	}
	cfg := embed.NewConfig()
	cfg.Name = "m0"
	cfg.Dir = spec.Dir
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	// On a data dir that already holds a member, etcd ignores these and
	// rejoins the cluster recorded there.
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	cfg.InitialClusterToken = "switchyard-test"
	cfg.TickMs, cfg.ElectionMs = 20, 200 // as StartCluster's members

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("etcdtest: start member on %s: %w", spec.Client, err)
	}
	defer closeSoon(e)
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		return fmt.Errorf("etcdtest: member on %s: %w", spec.Client, err)
	case <-time.After(20 * time.Second):
		return fmt.Errorf("etcdtest: member on %s not ready after 20s", spec.Client)
	case <-stop:
		return nil
	}
	fmt.Printf("%s: clients on %s, data in %s\n", MemberReady, cu, spec.Dir)
	select {
	case err := <-e.Err():
		return fmt.Errorf("etcdtest: member on %s: %w", spec.Client, err)
	case <-stop:
		return nil
	}
}

// closeSoon closes e, waiting at most a second: Close lets clients' open
// streams (an edge's watches) drain for up to etcd's request timeout, longer
// than a test wants to wait. Every commit is synced to the WAL first, so
// exiting before Close returns loses nothing.
func closeSoon(e *embed.Etcd) {
	closed := make(chan struct{})
	go func() { e.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(time.Second):
	}
}
