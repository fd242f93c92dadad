package metrics

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
)

func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		f := Func(func() []Sample {
			return []Sample{
				{Name: "test_packets_total", Help: "Packets.", Counter: true, Value: 7, Labels: []string{"direction", "in"}},
				{Name: "test_packets_total", Help: "Packets.", Counter: true, Value: 9, Labels: []string{"direction", "out"}},
				{Name: "test_flows", Help: "Flows.", Value: 3},
			}
		})
		if err := Serve(ctx, ln, slog.New(slog.DiscardHandler), f); err != nil {
			t.Error(err)
		}
	})
	defer func() { cancel(); wg.Wait() }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		"# TYPE test_packets_total counter", `test_packets_total{direction="in"} 7`, `test_packets_total{direction="out"} 9`,
		"# TYPE test_flows gauge", "test_flows 3", "go_goroutines",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}
