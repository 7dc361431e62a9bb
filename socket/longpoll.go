package socket

import "net/http"

// longPoller serves the LongPoll transport. (Filled in by the LongPoll work.)
type longPoller[A any] struct{}

func (lp *longPoller[A]) shutdown() {}

func (s *Server[A]) serveLongPoll(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusBadRequest)
}
