package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/phxgo/phx/channel"
)

// lobbyChannel is the "lobby" topic: who is online, with ratings
// (presence), challenges that start games, and rating changes.
type lobbyChannel struct {
	l *lobby
	// rating is this channel's copy of its player's rating, shown in its
	// presence meta; HandleOut replaces it when a result is broadcast.
	rating int
}

func (lc *lobbyChannel) Join(c *channel.Context[Player], _ channel.Payload) (channel.Result, error) {
	return channel.OK(map[string]any{"player": c.Assigns()}), nil
}

// AfterJoin shows the player in the lobby with their current rating: read
// from the service, not the assigns, because a channel that rejoins on an
// old connection would otherwise show the rating of the connect.
func (lc *lobbyChannel) AfterJoin(c *channel.Context[Player]) (channel.Result, error) {
	p, err := lc.l.players.Get(c.Context(), playerKey(c.Assigns().ID))
	if err != nil {
		return channel.NoReply(), err
	}
	lc.rating = p.Rating
	if _, err := lc.l.tracker.Track(c, p.Username, map[string]any{"rating": p.Rating}); err != nil {
		return channel.NoReply(), err
	}
	return channel.NoReply(), lc.l.tracker.PushState(c)
}

// HandleIn handles "challenge" {"opponent": username}: it starts a game
// with a player who is in the lobby and announces it there with
// "game_started" {"game": topic, "players": [challenger, opponent]}; the two
// players' pages join the game's topic.
func (lc *lobbyChannel) HandleIn(c *channel.Context[Player], event string, p channel.Payload) (channel.Result, error) {
	if event != "challenge" {
		return channel.Error(map[string]string{"reason": "unknown event"}), nil
	}
	var in struct {
		Opponent string `json:"opponent"`
	}
	_ = p.Decode(&in)
	me := c.Assigns()
	if _, online := lc.l.tracker.List("lobby")[in.Opponent]; !online || in.Opponent == me.Username {
		return channel.Error(map[string]string{"reason": "opponent not in the lobby"}), nil
	}
	opponentID, err := lc.l.db.userID(c.Context(), in.Opponent)
	if err != nil {
		return channel.NoReply(), err
	}
	topic := lc.l.games.start(me, Player{ID: opponentID, Username: in.Opponent})
	started := map[string]any{"game": topic, "players": []string{me.Username, in.Opponent}}
	if err := c.Broadcast("game_started", started); err != nil {
		return channel.NoReply(), err
	}
	return channel.OK(map[string]string{"game": topic}), nil
}

// HandleOut sees every "ratings" broadcast before it is pushed: when it
// carries this player's new rating, the presence meta is updated, so that
// players who join the lobby later see it too.
func (lc *lobbyChannel) HandleOut(c *channel.Context[Player], event string, p channel.Payload) (channel.Result, error) {
	var res result
	if err := p.Decode(&res); err == nil {
		if r, ok := res.Ratings[c.Assigns().Username]; ok && r != lc.rating {
			lc.rating = r
			if _, err := lc.l.tracker.Update(c, c.Assigns().Username, map[string]any{"rating": r}); err != nil {
				return channel.NoReply(), err
			}
		}
	}
	return channel.NoReply(), c.Push(event, p)
}

// result is the payload of "ratings", broadcast to the lobby and to the
// game when a game ends.
type result struct {
	Game    string         `json:"game"`
	Winner  string         `json:"winner"`
	Ratings map[string]int `json:"ratings"` // username -> new rating
}

// gameChannel is a "game:N" topic, open to the game's two players.
type gameChannel struct {
	l *lobby
}

// Join replies {"players": [{"username", "rating"}, ...], "over": bool}
// with the players' current ratings.
func (gc *gameChannel) Join(c *channel.Context[Player], _ channel.Payload) (channel.Result, error) {
	g, ok := gc.l.games.get(c.Topic())
	if !ok || !g.has(c.Assigns().Username) {
		return channel.Error(map[string]string{"reason": "not a player of this game"}), nil
	}
	players := make([]Player, 0, 2)
	for _, id := range g.ids {
		p, err := gc.l.players.Get(c.Context(), playerKey(id))
		if err != nil {
			return channel.NoReply(), err
		}
		players = append(players, p)
	}
	return channel.OK(map[string]any{"players": players, "over": g.over}), nil
}

// HandleIn handles "report" {"winner": username} from either player. The
// first report ends the game: both ratings change (Elo) and the result is
// broadcast to the game and the lobby as "ratings".
func (gc *gameChannel) HandleIn(c *channel.Context[Player], event string, p channel.Payload) (channel.Result, error) {
	if event != "report" {
		return channel.Error(map[string]string{"reason": "unknown event"}), nil
	}
	var in struct {
		Winner string `json:"winner"`
	}
	_ = p.Decode(&in)
	g, err := gc.l.games.finish(c.Topic(), in.Winner)
	if err != nil {
		return channel.Error(map[string]string{"reason": err.Error()}), nil
	}
	res, err := gc.l.rate(c.Context(), g, in.Winner)
	if err != nil {
		// The game stays over: reporting it again could rate the winner
		// twice if the first update was saved.
		c.Logger().Error("rating a game", "err", err)
		return channel.Error(map[string]string{"reason": "ratings not saved"}), nil
	}
	res.Game = c.Topic()
	if err := gc.l.srv.Broadcast(c.Context(), "lobby", "ratings", res); err != nil {
		return channel.NoReply(), err
	}
	return channel.OK(res), c.Broadcast("ratings", res)
}

// rate applies the result of game g to both players' ratings.
//
// Each rating changes in its own Update, on the service's fresh state, so
// no rating is written from a stale copy. The Elo points at stake are
// computed from both ratings read just before; if another of the players'
// games ends in between, this one uses a rating a few points old, which
// Elo tolerates (rated tournaments work from ratings fixed before play).
// The two updates are not one transaction: a crash between them would
// rate only the winner. A real system would put both in one store write.
func (l *lobby) rate(ctx context.Context, g game, winner string) (result, error) {
	w, lo := g.ids[0], g.ids[1]
	if g.usernames[1] == winner {
		w, lo = lo, w
	}
	pw, err := l.players.Get(ctx, playerKey(w))
	if err != nil {
		return result{}, err
	}
	pl, err := l.players.Get(ctx, playerKey(lo))
	if err != nil {
		return result{}, err
	}
	newW, _ := elo(pw.Rating, pl.Rating)
	delta := newW - pw.Rating
	pw, err = l.players.Update(ctx, playerKey(w), func(p *Player) error {
		p.Rating += delta
		return nil
	})
	if err != nil {
		return result{}, err
	}
	pl, err = l.players.Update(ctx, playerKey(lo), func(p *Player) error {
		p.Rating -= delta
		return nil
	})
	if err != nil {
		return result{}, err
	}
	return result{Winner: winner, Ratings: map[string]int{pw.Username: pw.Rating, pl.Username: pl.Rating}}, nil
}

// game is one game between two players.
type game struct {
	usernames [2]string
	ids       [2]int
	over      bool
}

func (g game) has(username string) bool {
	return g.usernames[0] == username || g.usernames[1] == username
}

// games are the games started since the server started, by topic. They
// live in memory only: a restart forgets unfinished games.
type games struct {
	mu    sync.Mutex
	next  int
	games map[string]*game
}

func newGames() *games { return &games{games: make(map[string]*game)} }

// start records a new game and returns its topic.
func (gs *games) start(a, b Player) string {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	gs.next++
	topic := "game:" + strconv.Itoa(gs.next)
	gs.games[topic] = &game{usernames: [2]string{a.Username, b.Username}, ids: [2]int{a.ID, b.ID}}
	return topic
}

func (gs *games) get(topic string) (game, bool) {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	g, ok := gs.games[topic]
	if !ok {
		return game{}, false
	}
	return *g, true
}

var errGameOver = errors.New("the result was already reported")

// finish marks the game over, so that a second report (the other player's,
// say) is refused rather than rated twice.
func (gs *games) finish(topic, winner string) (game, error) {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	g, ok := gs.games[topic]
	switch {
	case !ok:
		return game{}, errors.New("no such game")
	case !g.has(winner):
		return game{}, fmt.Errorf("%q does not play in this game", winner)
	case g.over:
		return game{}, errGameOver
	}
	g.over = true
	return *g, nil
}
