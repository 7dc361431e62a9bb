package socket

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

// originAllowed applies the configured origin policy (phoenix-protocol.md
// 1.6). A request without an Origin header is always allowed: only browsers
// send one, and the check exists to stop cross-site WebSocket hijacking from
// browsers. An Origin without a host (such as "null") is refused.
func (s *Server[A]) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || s.cfg.SkipOriginCheck {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Hostname() == "" {
		return false
	}
	if s.cfg.CheckOrigin != nil {
		return s.cfg.CheckOrigin(r, u)
	}
	if len(s.origins) > 0 {
		for _, allowed := range s.origins {
			if allowed.match(u) {
				return true
			}
		}
		return false
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.EqualFold(u.Hostname(), strings.Trim(host, "[]"))
}

// allowedOrigin is one entry of Config.AllowedOrigins. Each of scheme, host
// and port is compared only when the entry has it; a scheme implies its
// default port, as in Phoenix.
type allowedOrigin struct {
	scheme   string
	host     string
	wildcard bool // "*.example.com" also matches example.com itself
	port     string
}

func parseAllowedOrigin(s string) (allowedOrigin, bool) {
	u, err := url.Parse(s)
	if err != nil || u.Hostname() == "" {
		return allowedOrigin{}, false
	}
	o := allowedOrigin{scheme: strings.ToLower(u.Scheme), host: strings.ToLower(u.Hostname()), port: u.Port()}
	if strings.HasPrefix(o.host, "*.") {
		o.wildcard, o.host = true, o.host[2:]
	}
	if o.port == "" {
		o.port = defaultPort(o.scheme)
	}
	return o, true
}

func defaultPort(scheme string) string {
	switch scheme {
	case "http", "ws":
		return "80"
	case "https", "wss":
		return "443"
	}
	return ""
}

func (o allowedOrigin) match(u *url.URL) bool {
	host := strings.ToLower(u.Hostname())
	if o.wildcard {
		if host != o.host && !strings.HasSuffix(host, "."+o.host) {
			return false
		}
	} else if host != o.host {
		return false
	}
	scheme := strings.ToLower(u.Scheme)
	if o.scheme != "" && o.scheme != scheme {
		return false
	}
	if o.port != "" {
		port := u.Port()
		if port == "" {
			port = defaultPort(scheme)
		}
		if port != o.port {
			return false
		}
	}
	return true
}
