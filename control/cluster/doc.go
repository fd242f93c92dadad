// Package cluster is what the edges of one cluster share through etcd besides
// the configuration store: secrets sealed with the cluster key and created
// exactly once (the CA, the master key, the admin token's hash, the edges'
// WireGuard key), and the registration that each running edge keeps alive
// under an etcd lease, from which `switchyard edge list` is read.
//
// Keys under the cluster's prefix:
//
//	PREFIX s/NAME        a secret, sealed (XChaCha20-Poly1305, the name as
//	                     associated data) with the cluster key
//	PREFIX e/NAME        an edge's record: addresses, version, last seen
//	PREFIX a/NAME        the edge is alive: bound to its lease
//
// It imports control/model and the etcd client only.
package cluster
