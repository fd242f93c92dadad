package edge

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/switchyard/switchyard/control/cluster"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/pki"
	"github.com/switchyard/switchyard/control/store"
	"github.com/switchyard/switchyard/control/store/etcdstore"
	"github.com/switchyard/switchyard/internal/atomicfile"
)

// EtcdConfig says how an edge reaches the etcd cluster that holds its
// configuration and the cluster's secrets.
type EtcdConfig struct {
	// Endpoints are etcd's client addresses, host:port or URLs.
	Endpoints []string
	// Prefix is the cluster's key prefix; "" means etcdstore.DefaultPrefix.
	Prefix string
	// CA, Cert and Key are PEM files for TLS to etcd: the CA that signed
	// etcd's certificates, and a client certificate and key. With none of
	// them the edge talks plain gRPC (loopback or a trusted network only).
	CA, Cert, Key string
	// ClusterKey seals the cluster's secrets at rest in etcd.
	ClusterKey cluster.Key
	// RequestTimeout bounds each etcd request; 0 means etcdstore's default.
	RequestTimeout time.Duration
}

// Cluster secrets: the same for every edge, created by the first one.
const (
	secretCA         = "ca"          // JSON {cert, key} in PEM
	secretMasterKey  = "master.key"  // 32 bytes
	secretWGKey      = "wg.key/"     // + the edge's name: 32 bytes, each edge's own WireGuard key (an agent holds sessions to two edges as two peers)
	secretAdminToken = "admin-token" // the admin token itself: every edge writes it into its admin.json
)

// openEtcd connects to etcd and checks that it answers.
func openEtcd(ctx context.Context, e *EtcdConfig) (*etcdstore.Store, error) {
	cfg := clientv3.Config{Endpoints: append([]string(nil), e.Endpoints...), DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	if e.CA != "" || e.Cert != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if e.CA != "" {
			pem, err := os.ReadFile(e.CA)
			if err != nil {
				return nil, fmt.Errorf("--etcd-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--etcd-ca %s: no PEM certificate", e.CA)
			}
			tc.RootCAs = pool
		}
		if e.Cert != "" {
			pair, err := tls.LoadX509KeyPair(e.Cert, e.Key)
			if err != nil {
				return nil, fmt.Errorf("--etcd-cert/--etcd-key: %w", err)
			}
			tc.Certificates = []tls.Certificate{pair}
		}
		cfg.TLS = tc
		for i, ep := range cfg.Endpoints {
			if !strings.Contains(ep, "://") {
				cfg.Endpoints[i] = "https://" + ep
			}
		}
	}
	st, err := etcdstore.Open(cfg, etcdstore.Options{Prefix: e.Prefix, RequestTimeout: e.RequestTimeout})
	if err != nil {
		return nil, err
	}
	// Fail at start, with a clear error, rather than at the first request.
	if err := st.View(ctx, func(store.Tx) error { return nil }); err != nil {
		st.Close()
		return nil, fmt.Errorf("cannot use etcd at %s: %w; check that etcd runs there and that --etcd-ca, --etcd-cert and --etcd-key match its TLS settings", strings.Join(e.Endpoints, ","), err)
	}
	return st, nil
}

// loadClusterIdentity reads the cluster's secrets from etcd, creating those
// that are missing (exactly once across racing edges). dir is this edge's data
// dir, which keeps only its admin.json and flow log.
func loadClusterIdentity(ctx context.Context, st *etcdstore.Store, key cluster.Key, dir, name string) (*identity, error) {
	if err := atomicfile.PrivateDir(dir); err != nil {
		return nil, err
	}
	sec := cluster.NewSecrets(st.Client(), st.Prefix(), key)
	id := &identity{}

	type caPEM struct{ Cert, Key []byte }
	raw, _, err := sec.LoadOrCreate(ctx, secretCA, func() ([]byte, error) {
		c, k, err := pki.GenerateCA()
		if err != nil {
			return nil, err
		}
		return json.Marshal(caPEM{c, k})
	})
	if err != nil {
		return nil, err
	}
	var ca caPEM
	if err := json.Unmarshal(raw, &ca); err != nil {
		return nil, fmt.Errorf("cluster secret %s: %w", secretCA, err)
	}
	if id.ca, err = pki.ParseCA(ca.Cert, ca.Key); err != nil {
		return nil, fmt.Errorf("cluster secret %s: %w", secretCA, err)
	}

	master, err := loadClusterKey(ctx, sec, secretMasterKey, func() ([]byte, error) { return randomBytes(32), nil })
	if err != nil {
		return nil, err
	}
	id.master = master
	wg, err := loadClusterKey(ctx, sec, secretWGKey+name, newWGKey)
	if err != nil {
		return nil, err
	}
	if err := id.setWGKey(wg); err != nil {
		return nil, fmt.Errorf("cluster secret %s: %w", secretWGKey+name, err)
	}

	tok, created, err := sec.LoadOrCreate(ctx, secretAdminToken, func() ([]byte, error) {
		return []byte(newAdminToken()), nil
	})
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(string(tok), "syadm_") {
		return nil, fmt.Errorf("cluster secret %s: not an admin token", secretAdminToken)
	}
	id.adminHash = sha256.Sum256(tok)
	id.adminToken = string(tok)
	if created {
		id.newToken = string(tok)
	}
	return id, nil
}

// loadClusterKey is LoadOrCreate for a 32-byte key, refusing a damaged one.
func loadClusterKey(ctx context.Context, sec *cluster.Secrets, name string, create func() ([]byte, error)) ([]byte, error) {
	b, _, err := sec.LoadOrCreate(ctx, name, create)
	if err != nil {
		return nil, err
	}
	if len(b) != 32 || subtle.ConstantTimeCompare(b, make([]byte, 32)) == 1 {
		return nil, fmt.Errorf("cluster secret %s: not a 32-byte key", name)
	}
	return b, nil
}

// edgeName is cfg's edge name, or the hostname.
func edgeName(cfg Config) (string, error) {
	if cfg.EdgeName != "" {
		return cfg.EdgeName, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("edge name: %w (set --edge-name)", err)
	}
	return h, nil
}

// joinCluster records this edge in the cluster and starts recording its
// sessions in the session registry, until the returned function is called,
// which withdraws the sessions first, then the edge.
func joinCluster(ctx context.Context, st *etcdstore.Store, cfg Config, name, apiURL, masque string, id *identity, dp *dataplane, log *slog.Logger) (func(), error) {
	log = log.With("component", "cluster")
	reg, err := cluster.Register(ctx, st.Client(), st.Prefix(), model.Edge{
		Name: name, API: apiURL, WireGuard: cfg.PublicAddr, PublicKey: id.wgPublic, MASQUE: masque, Version: cfg.Version,
		Heartbeat: id.heartbeat4, Heartbeat6: id.heartbeat6,
	}, 0, log)
	if errors.Is(err, cluster.ErrNameInUse) {
		return nil, fmt.Errorf("edge name %q is used by another running edge of this cluster: give each edge its own --edge-name", name)
	}
	if err != nil {
		return nil, err
	}
	pub, err := cluster.PublishSessions(ctx, st.Client(), st.Prefix(), name, log)
	if err != nil {
		reg.Close()
		return nil, err
	}
	dp.setRegistry(pub, name)
	return func() {
		dp.setRegistry(nil, "")
		if err := pub.Close(); err != nil {
			log.Warn("sessions not withdrawn from the session registry", "err", err)
		}
		if err := reg.Close(); err != nil {
			log.Warn("edge registration not withdrawn", "err", err)
		}
	}, nil
}

// edgeAddresses claims this edge's index in its cluster (the same one
// every time it starts under this name) and returns its own addresses:
// agents probe it there through its own WireGuard peer while another edge
// carries their traffic. overlay may be zero (the default range).
func edgeAddresses(ctx context.Context, st *etcdstore.Store, name string, overlay netip.Prefix) (netip.Addr, netip.Addr, error) {
	i, err := cluster.EdgeIndex(ctx, st.Client(), st.Prefix(), name)
	if err != nil {
		return netip.Addr{}, netip.Addr{}, err
	}
	if !overlay.IsValid() {
		overlay = model.DefaultOverlayRange
	}
	return model.EdgeOwnAddress(overlay, i), model.EdgeOwnAddress6(i), nil
}

// edgeLister lists the cluster's edges for the API, with the sessions each
// holds; nil (the API's own answer: this edge alone) without a cluster.
func edgeLister(st *etcdstore.Store, view *cluster.SessionView) func(context.Context) ([]model.Edge, error) {
	if st == nil {
		return nil
	}
	return func(ctx context.Context) ([]model.Edge, error) {
		ctx, cancel := context.WithTimeout(ctx, etcdstore.DefaultRequestTimeout)
		defer cancel()
		edges, err := cluster.ListEdges(clientv3.WithRequireLeader(ctx), st.Client(), st.Prefix())
		if err != nil {
			return nil, fmt.Errorf("%w: %w", store.ErrUnavailable, err)
		}
		per := view.PerEdge()
		for i := range edges {
			edges[i].Sessions = per[edges[i].Name]
		}
		return edges, nil
	}
}

// viewSessions is the session registry's records for the API; nil without a cluster.
func viewSessions(view *cluster.SessionView) func() []model.Session {
	if view == nil {
		return nil
	}
	return view.Sessions
}

// clusterConnections is the API's view of every tunnel's replicas across
// the cluster: one entry per replica (connector), however many edges hold a
// session of it. Edge names the edge that carries its traffic (the session
// that is not its agent's standby), Standby the edges that hold its standby
// sessions, and State its role in its tunnel as that edge sees it. Hostname,
// address and priority come from this edge's own session when it has one;
// the session registry tells the rest.
func clusterConnections(local func() map[uuid.UUID][]model.Connection, view *cluster.SessionView, self string) func() map[uuid.UUID][]model.Connection {
	if view == nil {
		return local
	}
	return func() map[uuid.UUID][]model.Connection {
		out := local()
		type held struct {
			tunnel   uuid.UUID
			carrying *model.Session // the session that is not a standby
			standby  []string
			since    time.Time
		}
		replicas := map[uuid.UUID]*held{}
		var order []uuid.UUID // the registry's order, for replicas this edge holds no session of
		for _, s := range view.Sessions() {
			if s.Kind != model.SessionConnector {
				continue
			}
			h := replicas[s.ID]
			if h == nil {
				h = &held{tunnel: s.Tunnel, since: s.Since}
				replicas[s.ID] = h
				order = append(order, s.ID)
			}
			switch {
			case s.Standby:
				h.standby = append(h.standby, s.Edge)
			case h.carrying == nil, s.Edge == self, h.carrying.Edge != self && s.Active && !h.carrying.Active:
				// Two edges may both hold a session that is not a standby
				// for a moment (the agent just moved): this edge's own
				// session is the truth here, else the active one.
				h.carrying = &s
			}
		}
		seen := map[uuid.UUID]bool{}
		for _, cs := range out {
			for i := range cs {
				c := &cs[i]
				seen[c.ID] = true
				c.Edge = self
				h := replicas[c.ID]
				if h == nil {
					continue
				}
				c.Standby = slices.DeleteFunc(slices.Clone(h.standby), func(e string) bool { return e == self })
				if h.carrying != nil && h.carrying.Edge != self {
					c.Edge = h.carrying.Edge
					c.Standby = append(c.Standby, self)
					if c.State != model.ReplicaLeaving {
						c.State = replicaState(h.carrying.Active)
					}
				}
			}
		}
		for _, id := range order {
			h := replicas[id]
			if seen[id] {
				continue
			}
			c := model.Connection{ID: id, OpenedAt: h.since, State: model.ReplicaStandby, Standby: h.standby}
			if h.carrying != nil {
				c.Edge, c.OpenedAt, c.State, c.Transport = h.carrying.Edge, h.carrying.Since, replicaState(h.carrying.Active), h.carrying.Transport
			} else if len(h.standby) > 0 {
				c.Edge, c.Standby = h.standby[0], h.standby[1:]
			}
			out[h.tunnel] = append(out[h.tunnel], c)
		}
		return out
	}
}

// replicaState is the state of a replica whose carrying session's record says active or not.
func replicaState(active bool) model.ReplicaState {
	if active {
		return model.ReplicaActive
	}
	return model.ReplicaStandby
}
