package ephemeral_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/phxgo/phx/channel/ephemeral"
)

// Player is the snapshot a socket keeps in its assigns: a plain value,
// rendered freely, never written back.
type Player struct {
	Username string
	Rating   int
}

func Example() {
	ctx := context.Background()

	// A real application passes a database-backed store, such as
	// sqlitestore; the in-memory one keeps the example self-contained.
	db := ephemeral.NewMemoryStore[string, Player]()
	if _, err := db.Save(ctx, "user:42", Player{Username: "ana", Rating: 1500}, 0); err != nil {
		panic(err)
	}

	players := ephemeral.New[string, Player](db)
	defer players.Shutdown(ctx)

	// On join: take a snapshot for the assigns.
	assigns, err := players.Get(ctx, "user:42")
	if err != nil {
		panic(err)
	}

	// On "game:won": change fresh state, not the snapshot, and broadcast
	// the result so every socket replaces its copy.
	updated, err := players.Update(ctx, "user:42", func(p *Player) error {
		p.Rating += 16
		return nil
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("snapshot:", assigns.Rating, "broadcast:", updated.Rating)

	// A mutation that fails changes nothing.
	err = players.Do(ctx, "user:42", func(p *Player) error {
		p.Rating = 0
		return errors.New("rating reset not allowed")
	})
	fmt.Println("error:", err)

	stored, _, _ := db.Load(ctx, "user:42")
	fmt.Println("stored:", stored.Rating)

	// Output:
	// snapshot: 1500 broadcast: 1516
	// error: rating reset not allowed
	// stored: 1516
}
