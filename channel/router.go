package channel

import (
	"fmt"
	"strings"
)

// Router maps topics to handlers, like Phoenix's `channel "room:*", RoomChannel`.
// A pattern ending in "*" matches every topic with that prefix; any other
// pattern matches exactly. Routes are tried in the order they were added.
//
// Register routes before serving; a Router is safe for concurrent lookups.
type Router[A any] struct {
	routes []route[A]
}

type route[A any] struct {
	pattern    string
	prefix     string
	wildcard   bool
	newHandler func() Handler[A]
	intercepts []string
	recovery   *Recovery
}

// NewRouter returns an empty Router.
func NewRouter[A any]() *Router[A] { return &Router[A]{} }

// RouteOption configures a route.
type RouteOption func(*routeConfig)

type routeConfig struct {
	intercepts []string
	recovery   *Recovery
}

// Intercept lists broadcast events that go through the handler's HandleOut
// (one call per subscribing channel) instead of being written to every
// subscriber as they are. The handler must implement OutHandler.
func Intercept(events ...string) RouteOption {
	return func(c *routeConfig) { c.intercepts = append(c.intercepts, events...) }
}

// Handle routes topics matching pattern to handlers made by newHandler, which
// is called once per join. It panics on an invalid pattern (a "*" anywhere but
// at the end, or an empty pattern), as http.ServeMux does, since that is a
// programming error found at start-up.
func (r *Router[A]) Handle(pattern string, newHandler func() Handler[A], opts ...RouteOption) {
	if pattern == "" || strings.Contains(strings.TrimSuffix(pattern, "*"), "*") {
		panic(fmt.Sprintf("channel: invalid topic pattern %q: '*' is only allowed as the last character", pattern))
	}
	if newHandler == nil {
		panic("channel: nil handler constructor for " + pattern)
	}
	var cfg routeConfig
	for _, o := range opts {
		o(&cfg)
	}
	rt := route[A]{pattern: pattern, newHandler: newHandler, intercepts: cfg.intercepts, recovery: cfg.recovery}
	if strings.HasSuffix(pattern, "*") {
		rt.wildcard = true
		rt.prefix = strings.TrimSuffix(pattern, "*")
	}
	if len(rt.intercepts) > 0 {
		if _, ok := newHandler().(OutHandler[A]); !ok {
			panic("channel: route " + pattern + " intercepts events but its handler has no HandleOut")
		}
	}
	r.routes = append(r.routes, rt)
}

// Match reports the pattern of the first route matching topic.
func (r *Router[A]) Match(topic string) (pattern string, ok bool) {
	if rt := r.lookup(topic); rt != nil {
		return rt.pattern, true
	}
	return "", false
}

func (r *Router[A]) lookup(topic string) *route[A] {
	for i := range r.routes {
		rt := &r.routes[i]
		if rt.wildcard {
			if strings.HasPrefix(topic, rt.prefix) {
				return rt
			}
		} else if rt.pattern == topic {
			return rt
		}
	}
	return nil
}

func (rt *route[A]) intercepted(event string) bool {
	for _, e := range rt.intercepts {
		if e == event {
			return true
		}
	}
	return false
}
