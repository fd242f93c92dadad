// Package edge is the edge daemon: it bootstraps its data directory (CA, keys,
// admin token), opens the store, and serves the control API; the data plane
// joins it in later work. It imports control/... and routing, never the CLI.
package edge
