package redisserver

// PingTLS is ping over TLS checked against s's CA (plain text without TLS).
func PingTLS(s *Server) error { return ping(s.Addr, s.tls) }

// PingPlain is ping in plain text.
func PingPlain(s *Server) error { return ping(s.Addr, nil) }

// Port is s's port.
func Port(s *Server) int { return s.port }
