package cognitostub

import (
	"context"
	"errors"
	"fmt"
	"github.com/resetq/resetq/clock"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resetq/resetq/internal/world"
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

// usersPoll bounds RunUsers' waits, so that a call a reset schedules
// before the next one known goes at most this late.
const usersPoll = 5 * time.Millisecond

// RunUsers sends the calls of u into the quota as Background calls, each
// when it is due (a late one at once), until ctx is done, and tells u of
// every successful reset meanwhile.
func (s *Stub) RunUsers(ctx context.Context, u world.Users) {
	s.mu.Lock()
	s.users = u
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.users = nil
		s.mu.Unlock()
	}()
	for ctx.Err() == nil {
		d := usersPoll
		if t, ok := u.Peek(); ok {
			d = min(d, t.Sub(s.now()))
		}
		if d > 0 {
			if !s.wait(ctx, d) {
				return
			}
			continue
		}
		u.Pop()
		s.Admit(Background)
	}
}

// sleep waits d or until ctx is done, and reports whether it waited d.
func sleep(ctx context.Context, d time.Duration) bool {
	return clock.Sleep(ctx, clock.Real{}, d) == nil
}

// Server is a Stub served on a free 127.0.0.1 port.
type Server struct {
	*Stub
	// URL is http://127.0.0.1:PORT, the endpoint to give an SDK client
	// (BaseEndpoint, or AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER).
	URL string

	srv    *http.Server
	served chan error
	conns  atomic.Int64 // connections accepted

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

// SetBackground replaces the background load with perSecond calls per
// second, evenly spaced (0: none).
func (s *Server) SetBackground(perSecond float64) {
	if perSecond <= 0 {
		s.runBackground(nil)
		return
	}
	s.runBackground(func(ctx context.Context) { s.RunBackground(ctx, perSecond) })
}

// SetUsers replaces the background load with the calls of u (nil: none),
// as RunUsers sends them.
func (s *Server) SetUsers(u world.Users) {
	if u == nil {
		s.runBackground(nil)
		return
	}
	s.runBackground(func(ctx context.Context) { s.RunUsers(ctx, u) })
}

// runBackground stops the background load and starts run (nil: none).
func (s *Server) runBackground(run func(context.Context)) {
	s.bgMu.Lock()
	defer s.bgMu.Unlock()
	if s.bgStop != nil {
		s.bgStop()
		<-s.bgDone
		s.bgStop, s.bgDone = nil, nil
	}
	if run == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.bgStop, s.bgDone = cancel, done
	go func() {
		defer close(done)
		run(ctx)
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
