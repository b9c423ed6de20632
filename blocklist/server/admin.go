package server

import (
	"errors"
	"net/http"

	"github.com/rampart-sec/rampart/blocklist/internal/adminapi"
)

func (s *Server) handleFeeds(w http.ResponseWriter, r *http.Request, c caller) {
	writeJSON(w, http.StatusOK, s.FeedStatus())
}

func (s *Server) handleFeedFetch(w http.ResponseWriter, r *http.Request, c caller) {
	var body adminapi.FeedFetch
	if code, err := decodeJSON(w, r, &body); err != nil {
		s.refuse(w, r, c.name, code, "feed fetch: "+err.Error())
		return
	}
	out, err := s.FetchFeed(r.Context(), body.Feed, body.Accept)
	if errors.Is(err, ErrNoSuchFeed) {
		s.refuse(w, r, c.name, http.StatusNotFound, "feed fetch: "+err.Error())
		return
	}
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "feed fetch: " + err.Error()})
		return
	}
	s.log.Info("blocklistd: feed fetched on request", "feed", body.Feed, "accept", body.Accept, "by", c.name, "status", out.Status, "reason", out.Reason)
	writeJSON(w, http.StatusOK, out)
}
