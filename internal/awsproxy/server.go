package awsproxy

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
)

// Server is a Proxy listening on a loopback port, for tests and demos. Its
// methods include the Proxy's (SetQuota, AddFault, Stats, ...).
type Server struct {
	*Proxy
	// URL is the proxy's base URL, http://127.0.0.1:PORT: the endpoint to
	// give an SDK client (AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER,
	// AWS_ENDPOINT_URL_SQS or BaseEndpoint).
	URL string

	srv       *http.Server
	served    chan error
	closeOnce sync.Once
	closeErr  error
}

// Start creates a Proxy for target with New and serves it on 127.0.0.1 on
// a free port until Close.
func Start(target string, opts ...Option) (*Server, error) {
	p, err := New(target, opts...)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for proxy: %w", err)
	}
	s := &Server{
		Proxy:  p,
		URL:    "http://" + ln.Addr().String(),
		srv:    &http.Server{Handler: p},
		served: make(chan error, 1),
	}
	go func() { s.served <- s.srv.Serve(ln) }()
	return s, nil
}

// Close stops listening, closes all client connections (which cancels
// delayed calls) and the proxy's connections to the target. It is safe to
// call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		err := s.srv.Close()
		if serveErr := <-s.served; !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
			err = serveErr
		}
		s.Proxy.Close()
		if err != nil {
			s.closeErr = fmt.Errorf("close proxy %s: %w", s.URL, err)
		}
	})
	return s.closeErr
}
