// Package ephemeral keeps stale data out of your writes by giving every
// update a short-lived owner of fresh state.
//
// # The problem
//
// A Phoenix channel (or any long-lived connection) tempts you to put the
// whole User on the socket at join time and later write that copy back to
// the database. By then the copy is stale: another tab, another node or an
// admin changed the row, and the write silently undoes their change. Keeping
// only a user_id in the assigns avoids that but forces a database read in
// every handler. Registering one global process per user fixes the reads but
// breaks test isolation: two tests using user 42 talk to the same process.
//
// # The pattern
//
//   - Assigns hold an immutable snapshot, a plain value such as
//     Player{Username, Rating}, good for rendering and nothing else.
//   - Every change goes through a [Service]: it finds or starts the
//     instance that owns fresh state for the key, runs the mutation on it,
//     saves it, and replies. An instance that stays idle expires and its
//     goroutine ends, so memory follows activity.
//   - After a change, broadcast the new snapshot (see [Service.Update]) so
//     every socket replaces its copy instead of patching it.
//
// Stale data is excluded by the shape of the API rather than by discipline:
// a Service has no method that accepts a state value to save. The only way
// to a [Store.Save] is a func(*S) error handed to [Service.Do], which runs
// against the state the service just loaded or kept up to date. A snapshot
// taken an hour ago has no path back to the database.
//
// Nothing is global. The instances live in a map inside the Service value,
// so two services in one process (two tests, two tenants) never meet, even
// with the same keys.
//
// # Concurrency
//
// Mutations for one key run one at a time on that key's owner goroutine, in
// arrival order; callers for the same key share one instance. Different
// keys proceed in parallel.
//
// Across processes (several nodes, or a CLI next to the server) the
// [Store] provides optimistic concurrency: each save names the version it
// was based on and fails with [ErrConflict] if the stored version moved. The
// service then reloads fresh state and runs the mutation again, so a
// mutation may run more than once and must only touch the *S it is given:
// no I/O, no side effects, no references kept after it returns.
//
// # Durability
//
// By default (write-through) Do returns after the change is saved. With
// [WithWriteBehind] Do returns once the change is applied in memory, and
// saves are coalesced per key: at most one per flush interval, plus a flush
// when the instance expires and on [Service.Shutdown]. Failed flushes are
// retried with exponential backoff and reported to the handler set with
// [WithErrorHandler]; changes are never dropped without a report.
//
// # Copies
//
// The service hands out copies and runs each mutation on a copy, so that a
// mutation returning an error leaves the state untouched. Copies are made by
// assignment, which is enough for value types (structs of strings, numbers,
// arrays). If S holds maps, slices or pointers that mutations change in
// place, implement [Cloner] so the copy is deep.
package ephemeral
