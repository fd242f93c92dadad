package edge

import (
	"context"
	"log/slog"
	"time"

	"github.com/switchyard/switchyard/control/registry"
)

// purgeEvery is how often the edge removes deleted records past their retention.
const purgeEvery = time.Hour

// purgeDeleted removes deleted virtual networks, tunnels and routes once
// they are older than retention: at start, then every interval, until ctx
// ends.
func purgeDeleted(ctx context.Context, reg *registry.Registry, every, retention time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := reg.PurgeDeleted(ctx, retention)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("purging deleted records", "err", err)
		case n > 0:
			log.Info("purged deleted records", "records", n, "retention", retention)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
