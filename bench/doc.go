// Package bench is the harness behind `make bench`: it parses what the
// measuring tools print (iperf3 JSON, ping summaries, /proc/PID/stat, `go
// test -bench` lines), summarizes repeated runs as median [min–max], and
// renders the results file and the comparison table with its targets.
//
// The network-namespace lab that produces the measurements lives in this
// package's tests behind the netbench build tag (netbench_linux_test.go), so
// `make test` never runs it; `make bench` does (scripts/bench.sh). The
// package imports only the standard library.
package bench
