package client

import (
	"io"
	"net/http"
	"net/url"
	"sync"
)

// NewInProcess returns a client whose requests h serves in this process,
// with no network in between: the edge's console calls the edge's own API
// this way, with the signed-in operator's token, so that it sees exactly
// what the CLI sees and is refused exactly what the CLI is refused.
// Responses stream (a followed flow log arrives as it is written).
func NewInProcess(h http.Handler, token string) *Client {
	u := &url.URL{Scheme: "https", Host: "edge.in-process"}
	hc := &http.Client{Transport: handlerTransport{h}, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	return &Client{apis: newAPIList(u), token: token, hc: hc}
}

// handlerTransport is an http.RoundTripper that runs a handler.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	pr, pw := io.Pipe()
	w := &pipeWriter{header: http.Header{}, body: pw, ready: make(chan struct{})}
	w.resp = &http.Response{Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Body: pr, Request: req}
	go func() {
		defer func() {
			w.WriteHeader(http.StatusOK) // a handler that wrote nothing answered 200
			pw.Close()
		}()
		t.h.ServeHTTP(w, req)
	}()
	select {
	case <-w.ready:
		return w.resp, nil
	case <-req.Context().Done():
		pr.CloseWithError(req.Context().Err())
		return nil, req.Context().Err()
	}
}

// pipeWriter is the handler's side of handlerTransport: the status and
// headers are the response's once written, the body flows through a pipe.
type pipeWriter struct {
	header http.Header
	body   *io.PipeWriter
	resp   *http.Response
	once   sync.Once
	ready  chan struct{}
}

func (w *pipeWriter) Header() http.Header { return w.header }

func (w *pipeWriter) WriteHeader(status int) {
	w.once.Do(func() {
		w.resp.StatusCode, w.resp.Status = status, http.StatusText(status)
		w.resp.Header = w.header.Clone()
		close(w.ready)
	})
}

func (w *pipeWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

// Flush is a no-op: every Write reaches the reader as it is made.
func (w *pipeWriter) Flush() {}
