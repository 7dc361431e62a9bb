package sqlitestore

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/phxgo/phx/channel/ephemeral"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type counter struct{ N int }

func openStore(t *testing.T, path string) *Store[counter] {
	t.Helper()
	db, err := Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, db.Close()) })
	st, err := New[counter](context.Background(), db, "counters")
	require.NoError(t, err)
	return st
}

func TestLoadSaveVersions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t, filepath.Join(t.TempDir(), "db.sqlite"))

	_, _, err := st.Load(ctx, "k")
	require.ErrorIs(t, err, ephemeral.ErrNotFound)

	v1, err := st.Save(ctx, "k", counter{N: 1}, 0)
	require.NoError(t, err)
	assert.Equal(t, ephemeral.Version(1), v1)
	_, err = st.Save(ctx, "k", counter{N: 9}, 0)
	require.ErrorIs(t, err, ephemeral.ErrConflict, "insert of an existing key")

	v2, err := st.Save(ctx, "k", counter{N: 2}, v1)
	require.NoError(t, err)
	_, err = st.Save(ctx, "k", counter{N: 9}, v1)
	require.ErrorIs(t, err, ephemeral.ErrConflict, "update based on a stale version")

	c, v, err := st.Load(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, counter{N: 2}, c)
	assert.Equal(t, v2, v)
}

func TestInvalidTableName(t *testing.T) {
	t.Parallel()
	db, err := Open(filepath.Join(t.TempDir(), "db.sqlite"))
	require.NoError(t, err)
	defer db.Close()
	_, err = New[counter](context.Background(), db, "x; DROP TABLE y")
	require.Error(t, err)
}

// Two services in one process over the same file behave like two nodes.
func TestTwoServicesOneFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "db.sqlite")
	ctx := context.Background()
	const per = 50
	var wg sync.WaitGroup
	for range 2 {
		st := openStore(t, path)
		svc := ephemeral.New(ephemeral.CreateIfMissing[string, counter](st, nil), ephemeral.WithConflictRetries(1000))
		for range per {
			wg.Go(func() { assert.NoError(t, svc.Do(ctx, "k", func(c *counter) error { c.N++; return nil })) })
		}
		t.Cleanup(func() { assert.NoError(t, svc.Shutdown(ctx)) })
	}
	wg.Wait()
	c, _, err := openStore(t, path).Load(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, 2*per, c.N)
}

const (
	envHelper = "PHX_SQLITESTORE_HELPER_DB"
	envN      = "PHX_SQLITESTORE_HELPER_N"
	envStart  = "PHX_SQLITESTORE_HELPER_START"
)

// TestCrossProcess runs two OS processes (this test binary re-executed in
// helper mode), each with its own Service, incrementing one key in the
// same SQLite file concurrently. Version checks plus reload-and-retry must
// make every increment count exactly once.
func TestCrossProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	path := filepath.Join(t.TempDir(), "shared.sqlite")
	openStore(t, path) // create the file, WAL mode and table before the race
	const procs, per = 2, 150
	start := time.Now().Add(500 * time.Millisecond) // both begin together

	type out struct {
		text []byte
		err  error
	}
	outs := make([]out, procs)
	var wg sync.WaitGroup
	for i := range procs {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(),
				envHelper+"="+path,
				envN+"="+strconv.Itoa(per),
				envStart+"="+strconv.FormatInt(start.UnixNano(), 10))
			text, err := cmd.CombinedOutput()
			outs[i] = out{text, err}
		})
	}
	wg.Wait()
	for i, o := range outs {
		require.NoError(t, o.err, "helper %d:\n%s", i, o.text)
		t.Logf("helper %d:\n%s", i, o.text)
	}

	c, v, err := openStore(t, path).Load(context.Background(), "shared")
	require.NoError(t, err)
	assert.Equal(t, procs*per, c.N, "no lost or doubled increment")
	assert.Equal(t, ephemeral.Version(procs*per), v, "one save per increment")
}

// TestHelperProcess is not a test: it is the body of each process spawned
// by TestCrossProcess and does nothing unless that test set the env vars.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(envHelper)
	if path == "" {
		t.Skip("helper for TestCrossProcess")
	}
	n, err := strconv.Atoi(os.Getenv(envN))
	require.NoError(t, err)
	startNs, err := strconv.ParseInt(os.Getenv(envStart), 10, 64)
	require.NoError(t, err)

	counting := &countingStore{Store: openStore(t, path)}
	// Two processes hammering one key in lockstep conflict often; a
	// production deployment rarely does, hence the raised retry bound.
	svc := ephemeral.New(ephemeral.CreateIfMissing[string, counter](counting, nil), ephemeral.WithConflictRetries(1000))
	ctx := context.Background()
	time.Sleep(time.Until(time.Unix(0, startNs)))

	began := time.Now()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			assert.NoError(t, svc.Do(ctx, "shared", func(c *counter) error { c.N++; return nil }))
		})
	}
	wg.Wait()
	require.NoError(t, svc.Shutdown(ctx))
	fmt.Printf("pid %d: %d increments in %v, %d loads (1 + conflicts)\n",
		os.Getpid(), n, time.Since(began).Round(time.Millisecond), counting.loads)
}

// countingStore counts loads; the owner goroutine is the only caller, so
// no lock is needed.
type countingStore struct {
	*Store[counter]
	loads int
}

func (c *countingStore) Load(ctx context.Context, key string) (counter, ephemeral.Version, error) {
	c.loads++
	return c.Store.Load(ctx, key)
}
