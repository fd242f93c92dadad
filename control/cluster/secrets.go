package cluster

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Secrets reads and creates the cluster's sealed secrets.
type Secrets struct {
	cli    *clientv3.Client
	prefix string
	key    Key
}

// NewSecrets returns the secrets of the cluster under prefix, sealed with key.
func NewSecrets(cli *clientv3.Client, prefix string, key Key) *Secrets {
	return &Secrets{cli: cli, prefix: prefix, key: key}
}

// LoadOrCreate returns the secret name. When the cluster has none yet it calls
// create and stores the result with a create-if-absent transaction: of edges
// that race on an empty cluster, one value wins and every edge returns it;
// created reports whether it was this call's.
func (s *Secrets) LoadOrCreate(ctx context.Context, name string, create func() ([]byte, error)) (value []byte, created bool, err error) {
	k := s.prefix + "s/" + name
	resp, err := s.cli.Get(ctx, k)
	if err != nil {
		return nil, false, fmt.Errorf("read cluster secret %s from etcd: %w", name, err)
	}
	if len(resp.Kvs) > 0 {
		v, err := s.key.open(name, resp.Kvs[0].Value)
		return v, false, err
	}
	plain, err := create()
	if err != nil {
		return nil, false, fmt.Errorf("create cluster secret %s: %w", name, err)
	}
	txn, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, string(s.key.seal(name, plain)))).
		Else(clientv3.OpGet(k)).
		Commit()
	if err != nil {
		return nil, false, fmt.Errorf("store cluster secret %s in etcd: %w", name, err)
	}
	if txn.Succeeded {
		return plain, true, nil
	}
	kvs := txn.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return nil, false, fmt.Errorf("cluster secret %s: created by another edge, then gone", name)
	}
	v, err := s.key.open(name, kvs[0].Value)
	return v, false, err
}
