// Package sqlitestore is an ephemeral.Store kept in a SQLite table, safe to
// share between processes: each row carries a version, and a save only
// succeeds if the version it was based on is still the stored one.
//
// The table has the shape
//
//	CREATE TABLE name (key TEXT PRIMARY KEY, version INTEGER NOT NULL, data TEXT NOT NULL)
//
// with the state JSON-encoded in data. A first save inserts the row (and
// conflicts if another process inserted it first); later saves run
//
//	UPDATE name SET version = version + 1, data = ? WHERE key = ? AND version = ?
//
// and report ephemeral.ErrConflict when no row matched. Combined with an
// ephemeral.Service, which reloads and re-runs the mutation on conflict,
// any number of processes can update the same key without losing writes.
//
// It uses modernc.org/sqlite, a pure Go driver, registered as "sqlite".
package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/phxgo/phx/channel/ephemeral"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// Open opens (creating if needed) the SQLite database at path, configured
// for several processes sharing it: WAL journal so readers do not block
// the writer, a 5s busy timeout so a writer waits for the lock instead of
// failing at once, and synchronous=NORMAL, which in WAL mode can lose the
// last commits on power loss but never corrupts the file. path must not
// contain '?'.
func Open(path string) (*sql.DB, error) {
	if strings.Contains(path, "?") {
		return nil, fmt.Errorf("sqlitestore: path %q must not contain '?'", path)
	}
	dsn := "file:" + path +
		"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	return db, nil
}

// Store loads and saves JSON-encoded states of type S keyed by string. It
// is safe for concurrent use and satisfies ephemeral.Store[string, S].
type Store[S any] struct {
	db                   *sql.DB
	load, insert, update string
}

var _ ephemeral.Store[string, struct{}] = (*Store[struct{}])(nil)

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// New returns a Store over table in db, creating the table if it does not
// exist. The table name is spliced into SQL, so it must be a plain
// identifier. db may come from Open or be any database/sql handle on a
// SQLite database.
func New[S any](ctx context.Context, db *sql.DB, table string) (*Store[S], error) {
	if !identifier.MatchString(table) {
		return nil, fmt.Errorf("sqlitestore: invalid table name %q", table)
	}
	create := `CREATE TABLE IF NOT EXISTS ` + table +
		` (key TEXT PRIMARY KEY, version INTEGER NOT NULL, data TEXT NOT NULL)`
	if _, err := db.ExecContext(ctx, create); err != nil {
		return nil, fmt.Errorf("sqlitestore: create table %s: %w", table, err)
	}
	return &Store[S]{
		db:     db,
		load:   `SELECT version, data FROM ` + table + ` WHERE key = ?`,
		insert: `INSERT INTO ` + table + ` (key, version, data) VALUES (?, 1, ?) ON CONFLICT (key) DO NOTHING`,
		update: `UPDATE ` + table + ` SET version = version + 1, data = ? WHERE key = ? AND version = ?`,
	}, nil
}

// Load returns the decoded state of key and its version, or an error
// wrapping ephemeral.ErrNotFound if there is no row.
func (s *Store[S]) Load(ctx context.Context, key string) (S, ephemeral.Version, error) {
	var (
		state   S
		version int64
		data    []byte
	)
	err := s.db.QueryRowContext(ctx, s.load, key).Scan(&version, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return state, 0, fmt.Errorf("sqlitestore: key %q: %w", key, ephemeral.ErrNotFound)
	}
	if err != nil {
		return state, 0, fmt.Errorf("sqlitestore: load %q: %w", key, err)
	}
	if err := json.Unmarshal(data, &state); err != nil {
		return state, 0, fmt.Errorf("sqlitestore: decode %q: %w", key, err)
	}
	return state, ephemeral.Version(version), nil
}

// Save writes state if the stored version of key equals expected (0: the
// row must not exist yet) and returns the new version; otherwise it changes
// nothing and returns an error wrapping ephemeral.ErrConflict.
func (s *Store[S]) Save(ctx context.Context, key string, state S, expected ephemeral.Version) (ephemeral.Version, error) {
	data, err := json.Marshal(state)
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: encode %q: %w", key, err)
	}
	// As a string, not []byte: SQLite would store bytes as a BLOB, and
	// TEXT keeps the column readable with sqlite3 and its json functions.
	text := string(data)
	var res sql.Result
	if expected == 0 {
		res, err = s.db.ExecContext(ctx, s.insert, key, text)
	} else {
		res, err = s.db.ExecContext(ctx, s.update, text, key, int64(expected))
	}
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: save %q: %w", key, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: save %q: %w", key, err)
	}
	if n == 0 {
		return 0, fmt.Errorf("sqlitestore: key %q moved past version %d: %w", key, expected, ephemeral.ErrConflict)
	}
	return expected + 1, nil
}
