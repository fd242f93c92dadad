// Command demo-etcd runs the one-member etcd cluster of make demo-cluster
// (deploy/demo-cluster.sh), from go.etcd.io/etcd/server/v3/embed, which the
// tests already use, so the demo needs no etcd package on the machine. It
// serves plain HTTP with short raft timings, as the tests' members do: a demo
// and test tool, not a way to run etcd in production (README's cluster
// section shows that). It prints "etcd member ready" once it serves clients
// and stops on SIGTERM or SIGINT.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/switchyard/switchyard/internal/etcdtest"
)

func main() {
	dir := flag.String("data-dir", "", "directory for the member's data (required)")
	client := flag.String("listen-client", "127.0.0.1:2379", "HOST:PORT for clients")
	peer := flag.String("listen-peer", "127.0.0.1:2380", "HOST:PORT for peers")
	flag.Parse()
	if *dir == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := etcdtest.RunMember(*dir, *client, *peer); err != nil {
		fmt.Fprintln(os.Stderr, "demo-etcd:", err)
		os.Exit(1)
	}
}
