package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"

	"github.com/phxgo/phx/channel/ephemeral"
	"github.com/phxgo/phx/channel/ephemeral/sqlitestore"
)

// Player is a connection's assigns: who is playing and their rating when
// they connected. It is a snapshot for display and nothing else; ratings
// change only through the player service, which works on fresh state.
type Player struct {
	ID       int    `json:"id"`
	Username string `json:"username"`
	Rating   int    `json:"rating"`
}

// NewPlayerRating is the rating of a player who signs up at the login form.
const NewPlayerRating = 1200

// db holds the players: the users table maps usernames to ids, and the
// players table (an ephemeral store, keyed by id) holds each Player with a
// version, so that ratings are only ever written through the service.
type db struct {
	sql     *sql.DB
	players *sqlitestore.Store[Player]
}

// playerKey is the player service's key for a user id.
func playerKey(id int) string { return strconv.Itoa(id) }

// openDB opens (creating and seeding if needed) the SQLite file at path.
func openDB(ctx context.Context, path string) (*db, error) {
	sqlDB, err := sqlitestore.Open(path)
	if err != nil {
		return nil, err
	}
	d := &db{sql: sqlDB}
	_, err = sqlDB.ExecContext(ctx,
		`CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE)`)
	if err == nil {
		d.players, err = sqlitestore.New[Player](ctx, sqlDB, "players")
	}
	// The first start with a new file seeds a few players; later starts
	// find them and change nothing.
	seed := []Player{
		{Username: "alice", Rating: 1500},
		{Username: "bob", Rating: 1400},
		{Username: "carol", Rating: 1600},
		{Username: "dave", Rating: 1450},
	}
	for _, p := range seed {
		if err != nil {
			break
		}
		_, err = d.signUp(ctx, p.Username, p.Rating)
	}
	if err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("lobby: database %s: %w", path, err)
	}
	return d, nil
}

// signUp returns the id of username, creating the user with rating if it
// does not exist. Both steps only insert, so two servers on one file (or a
// seed racing a login) can run it at once: the loser of each race finds the
// winner's row.
func (d *db) signUp(ctx context.Context, username string, rating int) (int, error) {
	_, err := d.sql.ExecContext(ctx,
		`INSERT INTO users (username) VALUES (?) ON CONFLICT (username) DO NOTHING`, username)
	if err != nil {
		return 0, err
	}
	id, err := d.userID(ctx, username)
	if err != nil {
		return 0, err
	}
	p := Player{ID: id, Username: username, Rating: rating}
	if _, err := d.players.Save(ctx, playerKey(id), p, 0); err != nil && !errors.Is(err, ephemeral.ErrConflict) {
		return 0, err
	}
	return id, nil
}

// userID returns the id of an existing user.
func (d *db) userID(ctx context.Context, username string) (int, error) {
	var id int
	err := d.sql.QueryRowContext(ctx, `SELECT id FROM users WHERE username = ?`, username).Scan(&id)
	return id, err
}

func (d *db) close() error { return d.sql.Close() }
