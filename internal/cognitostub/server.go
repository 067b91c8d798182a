package cognitostub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// RunBackground sends perSecond background calls per second into the
// quota window, evenly spaced (the first at once), until ctx is done. A
// call that is late (the process was busy) goes at once, so the average
// rate holds. perSecond <= 0 returns at once.
func (s *Stub) RunBackground(ctx context.Context, perSecond float64) {
	if perSecond <= 0 {
		return
	}
	interval := time.Duration(float64(time.Second) / perSecond)
	next := s.now()
	for ctx.Err() == nil {
		s.Admit(Background)
		next = next.Add(interval)
		if d := next.Sub(s.now()); d > 0 && !s.wait(ctx, d) {
			return
		}
	}
}

// sleep waits d or until ctx is done, and reports whether it waited d.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Server is a Stub served on a free 127.0.0.1 port.
type Server struct {
	*Stub
	// URL is http://127.0.0.1:PORT, the endpoint to give an SDK client
	// (BaseEndpoint, or AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER).
	URL string

	srv    *http.Server
	served chan error

	bgMu   sync.Mutex
	bgStop context.CancelFunc
	bgDone chan struct{}
}

// Start serves a new Stub configured by cfg until Close.
func Start(cfg Config) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for cognito stand-in: %w", err)
	}
	s := &Server{Stub: New(cfg), URL: "http://" + ln.Addr().String(), served: make(chan error, 1)}
	s.srv = &http.Server{Handler: s.Stub, ReadHeaderTimeout: 10 * time.Second}
	go func() { s.served <- s.srv.Serve(ln) }()
	return s, nil
}

// SetBackground replaces the background load with perSecond calls per
// second (0: none).
func (s *Server) SetBackground(perSecond float64) {
	s.bgMu.Lock()
	defer s.bgMu.Unlock()
	if s.bgStop != nil {
		s.bgStop()
		<-s.bgDone
		s.bgStop, s.bgDone = nil, nil
	}
	if perSecond <= 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.bgStop, s.bgDone = cancel, done
	go func() {
		defer close(done)
		s.RunBackground(ctx, perSecond)
	}()
}

// Close stops the background load and the server.
func (s *Server) Close() error {
	s.SetBackground(0)
	err := s.srv.Close()
	if serveErr := <-s.served; !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
		err = serveErr
	}
	return err
}
