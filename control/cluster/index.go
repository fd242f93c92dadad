package cluster

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchyard/switchyard/control/model"
)

// Keys of the edges' indexes: prefix+"i/"+name holds the edge's index, and
// prefix+"n/"+index the name that claimed it, so that two edges never hold
// one index.
func indexKey(prefix, name string) string  { return prefix + "i/" + name }
func claimKey(prefix string, i int) string { return prefix + "n/" + strconv.Itoa(i) }

// EdgeIndex returns the small number, below model.MaxEdges, that names the
// edge called name in its cluster and gives it addresses of its own
// (model.EdgeOwnAddress). The first call for a name claims the lowest free
// index with a create-if-absent transaction, so that edges starting at the
// same moment get distinct ones; later calls, after a restart too, return
// the same index. ForgetEdge frees it.
func EdgeIndex(ctx context.Context, cli *clientv3.Client, prefix, name string) (int, error) {
	for {
		got, err := cli.Get(ctx, indexKey(prefix, name))
		if err != nil {
			return 0, fmt.Errorf("edge index of %s: %w", name, err)
		}
		if len(got.Kvs) == 1 {
			i, err := strconv.Atoi(string(got.Kvs[0].Value))
			if err != nil || i < 0 || i >= model.MaxEdges {
				return 0, fmt.Errorf("edge index of %s: damaged record %q", name, got.Kvs[0].Value)
			}
			return i, nil
		}
		claims, err := cli.Get(ctx, prefix+"n/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			return 0, fmt.Errorf("edge index of %s: %w", name, err)
		}
		taken := map[int]bool{}
		for _, kv := range claims.Kvs {
			if i, err := strconv.Atoi(strings.TrimPrefix(string(kv.Key), prefix+"n/")); err == nil {
				taken[i] = true
			}
		}
		i := 0
		for taken[i] {
			i++
		}
		if i >= model.MaxEdges {
			return 0, fmt.Errorf("edge index of %s: the cluster has %d edges already; forget those gone for good", name, model.MaxEdges)
		}
		txn, err := cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(indexKey(prefix, name)), "=", 0),
				clientv3.Compare(clientv3.CreateRevision(claimKey(prefix, i)), "=", 0)).
			Then(clientv3.OpPut(indexKey(prefix, name), strconv.Itoa(i)), clientv3.OpPut(claimKey(prefix, i), name)).
			Commit()
		if err != nil {
			return 0, fmt.Errorf("edge index of %s: %w", name, err)
		}
		if txn.Succeeded {
			return i, nil
		}
		// Another edge took that index, or this name got one meanwhile: look again.
	}
}
