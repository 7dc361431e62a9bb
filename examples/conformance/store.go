package main

import (
	"context"
	"database/sql"
	"errors"
	"strconv"

	"github.com/phxgo/phx/channel/ephemeral"
	"github.com/phxgo/phx/channel/ephemeral/sqlitestore"
)

// Profile is a user's stored, mutable state. Unlike User (the connect-time
// snapshot in the assigns) it is only ever changed through the ephemeral
// service, so a change never starts from a stale copy.
type Profile struct {
	Username string `json:"username"`
	Rating   int    `json:"rating"`
}

// profileStore is where profiles live, keyed by the user id in decimal.
type profileStore = ephemeral.Store[string, Profile]

// userKey is the store key of a user.
func userKey(id int) string { return strconv.Itoa(id) }

// openStore returns the SQLite store at path, or an in-memory one when path
// is "", seeded with the three users either way. closeDB releases the
// database.
func openStore(ctx context.Context, path string) (store profileStore, closeDB func() error, err error) {
	var db *sql.DB
	if path == "" {
		store, closeDB = ephemeral.NewMemoryStore[string, Profile](), func() error { return nil }
	} else {
		if db, err = sqlitestore.Open(path); err != nil {
			return nil, nil, err
		}
		if store, err = sqlitestore.New[Profile](ctx, db, "users"); err != nil {
			db.Close()
			return nil, nil, err
		}
		closeDB = db.Close
	}
	if err := seed(ctx, store); err != nil {
		closeDB()
		return nil, nil, err
	}
	return store, closeDB, nil
}

// seed inserts the three users unless they exist. Saving at version 0 only
// inserts, so when several processes start on one file at once exactly one
// of them seeds each user and the others see ErrConflict, which is fine.
func seed(ctx context.Context, store profileStore) error {
	for _, u := range seedUsers {
		_, err := store.Save(ctx, userKey(u.ID), Profile{Username: u.Username, Rating: u.Rating}, 0)
		if err != nil && !errors.Is(err, ephemeral.ErrConflict) {
			return err
		}
	}
	return nil
}
