package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/urfave/cli/v2"
)

// debugAddrFlag turns on the Go profiling listener; it is off by default.
var debugAddrFlag = &cli.StringFlag{
	Name:  "debug-addr",
	Usage: "serve Go's profiles (/debug/pprof/) on `ADDR`, e.g. 127.0.0.1:6060; off by default; never expose it beyond the host",
}

// serveDebug starts an HTTP server with net/http/pprof's handlers on addr,
// unless addr is empty, and returns the address it listens on; stop closes
// it and waits for it.
func serveDebug(addr string, log *slog.Logger) (bound string, stop func(), err error) {
	if addr == "" {
		return "", func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("--debug-addr: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// No write timeout: a CPU profile streams for as long as it was asked to.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("debug listener stopped", "addr", addr, "err", err)
		}
	}()
	log.Info("debug listener serving /debug/pprof/", "addr", ln.Addr().String())
	return ln.Addr().String(), func() {
		srv.Close()
		<-done
	}, nil
}
