package dynamostub

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// Server is a Stub served on a free 127.0.0.1 port.
type Server struct {
	*Stub
	// URL is http://127.0.0.1:PORT, the endpoint to give an SDK client
	// (BaseEndpoint, or AWS_ENDPOINT_URL_DYNAMODB).
	URL string

	srv    *http.Server
	served chan error
	conns  atomic.Int64 // connections accepted
}

// Start serves a new Stub configured by cfg until Close.
func Start(cfg Config) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for dynamodb stand-in: %w", err)
	}
	s := &Server{Stub: New(cfg), URL: "http://" + ln.Addr().String(), served: make(chan error, 1)}
	s.srv = &http.Server{Handler: s.Stub, ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				s.conns.Add(1)
			}
		}}
	go func() { s.served <- s.srv.Serve(ln) }()
	return s, nil
}

// Conns is the TCP connections the server has accepted since it started.
func (s *Server) Conns() int64 { return s.conns.Load() }

// Close stops the server.
func (s *Server) Close() error {
	err := s.srv.Close()
	if serveErr := <-s.served; !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
		err = serveErr
	}
	return err
}
