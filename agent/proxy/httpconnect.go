package proxy

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

// ServeHTTPConnect serves an HTTP proxy that knows one method, CONNECT
// (RFC 9110 section 9.3.6), on l until ctx ends or l fails; it closes l and
// every connection it accepted before it returns.
func (s *Server) ServeHTTPConnect(ctx context.Context, l net.Listener) error {
	return s.serve(ctx, l, s.httpConnect)
}

// headerTimeout bounds how long a client takes to send its request.
const headerTimeout = 30 * time.Second

// httpConnect handles one proxy connection.
func (s *Server) httpConnect(ctx context.Context, c net.Conn) {
	c.SetReadDeadline(time.Now().Add(headerTimeout))
	r := bufio.NewReader(c)
	req, err := http.ReadRequest(r)
	if err != nil {
		return
	}
	c.SetReadDeadline(time.Time{})
	if req.Method != http.MethodConnect {
		status(c, http.StatusMethodNotAllowed, "only CONNECT is supported")
		return
	}
	host, port, err := splitHostPort(req.Host)
	if err != nil {
		status(c, http.StatusBadRequest, err.Error())
		return
	}
	out, err := s.dial(ctx, host, port)
	if err != nil {
		s.log().Debug("http connect", "dst", req.Host, "err", err)
		status(c, http.StatusBadGateway, err.Error())
		return
	}
	if _, err := fmt.Fprintf(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		out.Close()
		return
	}
	Splice(&bufferedConn{Conn: c, r: r}, out)
}

// status writes an HTTP error response.
func status(c net.Conn, code int, msg string) {
	fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s\n",
		code, http.StatusText(code), len(msg)+1, msg)
}
