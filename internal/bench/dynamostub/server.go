package dynamostub

import (
	"errors"
	"fmt"
	"net"
	"net/http"
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
}

// Start serves a new Stub configured by cfg until Close.
func Start(cfg Config) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for dynamodb stand-in: %w", err)
	}
	s := &Server{Stub: New(cfg), URL: "http://" + ln.Addr().String(), served: make(chan error, 1)}
	s.srv = &http.Server{Handler: s.Stub, ReadHeaderTimeout: 10 * time.Second}
	go func() { s.served <- s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error {
	err := s.srv.Close()
	if serveErr := <-s.served; !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
		err = serveErr
	}
	return err
}
