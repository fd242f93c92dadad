package agent

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/agent/localapi"
	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
)

// The roles, as the control socket names them.
const (
	roleConnector = "connector"
	roleClient    = "client"
)

// local is what a running agent serves on its control socket (localapi):
// its status, a connector's gateway preference, a client's virtual network.
// It exists before the tunnel does, so the socket answers from the start.
type local struct {
	role      string
	priority  uint8
	preferred atomic.Bool                   // connector promote/demote; read by the heartbeats
	beat      atomic.Pointer[beat]          // once the tunnel is up: the active edge's
	tunnel    atomic.Pointer[hostTunnel]    // once the tunnel is up
	api       atomic.Pointer[client.Client] // a client's device API, once enrolled
	userspace bool                          // a client in userspace mode
	us        atomic.Pointer[userspace]     // its stack and split decision, once up
	session   atomic.Pointer[time.Time]     // a client's session end; nil: none

	// posture is a client's posture reporter, once it runs.
	posture atomic.Pointer[postureReporter]
}

var (
	_ localapi.Agent  = (*local)(nil)
	_ localapi.Dialer = (*local)(nil)
)

var _ localapi.PostureReporter = (*local)(nil)

// serveLocal opens the control socket of the agent in stateDir; stop
// closes it and removes the socket.
func serveLocal(stateDir string, l *local, log *slog.Logger) (stop func(), err error) {
	srv, err := localapi.Listen(stateDir, l)
	if err != nil {
		return nil, err
	}
	log.Info("control socket ready", "path", srv.Path())
	return func() {
		if err := srv.Close(); err != nil {
			log.Warn("closing the control socket", "err", err)
		}
	}, nil
}

// Status implements localapi.Agent.
func (l *local) Status() localapi.Status {
	st := localapi.Status{PID: os.Getpid(), Priority: int(l.priority), UpdatedAt: time.Now()}
	if b := l.beat.Load(); b != nil {
		st = b.status()
	}
	if h := l.tunnel.Load(); h != nil {
		st.Edge, st.Standby = h.edgeStatus()
		st.PathMTU = h.pathMTUStatus()
	}
	st.Role = l.role
	st.SessionExpiresAt = l.session.Load()
	st.Preferred = l.role == roleConnector && l.preferred.Load()
	return st
}

// SetPreferred implements localapi.Agent: the heartbeats carry the change to
// the edge within one interval.
func (l *local) SetPreferred(preferred bool) (localapi.Status, error) {
	if l.role != roleConnector {
		return localapi.Status{}, model.Errorf(model.KindInvalid, "set the gateway preference: the agent is a %s, not a connector", l.role)
	}
	l.preferred.Store(preferred)
	return l.Status(), nil
}

// VNets implements localapi.Agent.
func (l *local) VNets(ctx context.Context) ([]model.VNet, error) {
	api, err := l.deviceAPI()
	if err != nil {
		return nil, err
	}
	return api.DeviceVNets(ctx)
}

// SelectVNet implements localapi.Agent.
func (l *local) SelectVNet(ctx context.Context, vnet string) (model.VNet, error) {
	api, err := l.deviceAPI()
	if err != nil {
		return model.VNet{}, err
	}
	return api.SelectVNet(ctx, vnet)
}

// deviceAPI is a client's device API, once it is enrolled.
func (l *local) deviceAPI() (*client.Client, error) {
	if l.role != roleClient {
		return nil, model.Errorf(model.KindInvalid, "select a virtual network: the agent is a %s, not a client", l.role)
	}
	api := l.api.Load()
	if api == nil {
		return nil, model.Errorf(model.KindUnavailable, "select a virtual network: the client is not enrolled yet")
	}
	return api, nil
}

// DialTunnel implements localapi.Dialer: a userspace client dials through
// its stack (access tcp); a kernel client's host routes already carry the
// host's own connections.
func (l *local) DialTunnel(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	if l.role != roleClient || !l.userspace {
		return nil, model.Errorf(model.KindInvalid, "dial %s: the %s running with this state dir is not a userspace client; its host routes carry connections to the sites: connect directly", dst, l.role)
	}
	us := l.us.Load()
	if us == nil {
		return nil, model.Errorf(model.KindUnavailable, "dial %s: the userspace client is not up yet", dst)
	}
	return us.dial(ctx, dst)
}

// ReportPosture implements localapi.PostureReporter: a client collects its
// posture and reports it at once.
func (l *local) ReportPosture(ctx context.Context) (model.Posture, error) {
	if l.role != roleClient {
		return model.Posture{}, model.Errorf(model.KindInvalid, "report the device posture: the agent is a %s, not a client", l.role)
	}
	r := l.posture.Load()
	if r == nil {
		return model.Posture{}, model.Errorf(model.KindUnavailable, "report the device posture: the client is not up yet")
	}
	return r.reportNow(ctx)
}
