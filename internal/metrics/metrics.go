// Package metrics serves Prometheus metrics: daemons describe their counters
// as Samples read at scrape time (nothing is counted twice or per packet
// here), and Serve exposes them on /metrics.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Sample is one metric value, read when Prometheus scrapes.
type Sample struct {
	Name    string
	Help    string
	Counter bool     // a counter; else a gauge
	Labels  []string // label name, value, name, value, ...
	Value   float64
}

// Func collects the Samples a function returns at each scrape.
type Func func() []Sample

// Describe sends nothing: Func is an unchecked collector, its metrics are
// known only when collected.
func (f Func) Describe(chan<- *prometheus.Desc) {}

// Collect reads the samples and sends them.
func (f Func) Collect(ch chan<- prometheus.Metric) {
	for _, s := range f() {
		var names, values []string
		for i := 0; i+1 < len(s.Labels); i += 2 {
			names = append(names, s.Labels[i])
			values = append(values, s.Labels[i+1])
		}
		typ := prometheus.GaugeValue
		if s.Counter {
			typ = prometheus.CounterValue
		}
		m, err := prometheus.NewConstMetric(prometheus.NewDesc(s.Name, s.Help, names, nil), typ, s.Value, values...)
		if err != nil {
			m = prometheus.NewInvalidMetric(prometheus.NewDesc(s.Name, s.Help, names, nil), err)
		}
		ch <- m
	}
}

// Serve exposes /metrics for the collectors (plus Go runtime and process
// metrics) on ln until ctx ends.
func Serve(ctx context.Context, ln net.Listener, log *slog.Logger, cs ...prometheus.Collector) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register metrics collector: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve metrics on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve metrics on %s: %w", ln.Addr(), err)
	}
	return nil
}
