package main

import "math"

// K is the Elo K-factor: the most points one game can move a rating.
const K = 32

// elo returns the ratings of a game's winner and loser after the game. The
// winner gains what the loser loses, rounded to whole points, so the sum
// of all ratings never drifts: beating a stronger player is worth up to K
// points, beating a much weaker one close to nothing.
func elo(winner, loser int) (newWinner, newLoser int) {
	expected := 1 / (1 + math.Pow(10, float64(loser-winner)/400))
	delta := int(math.Round(K * (1 - expected)))
	return winner + delta, loser - delta
}
