package main

import "testing"

func TestElo(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		winner, loser, wantWinner, wantLoser int
	}{
		{1500, 1500, 1516, 1484}, // equals: half of K
		{1500, 1400, 1512, 1388}, // the favourite wins: fewer points
		{1400, 1500, 1420, 1480}, // the underdog wins: more points
		{2400, 1000, 2400, 1000}, // a foregone conclusion moves nothing
		{1000, 2400, 1032, 2368}, // the biggest upset moves K
	} {
		w, l := elo(tc.winner, tc.loser)
		if w != tc.wantWinner || l != tc.wantLoser {
			t.Errorf("elo(%d, %d) = %d, %d; want %d, %d", tc.winner, tc.loser, w, l, tc.wantWinner, tc.wantLoser)
		}
		if w+l != tc.winner+tc.loser {
			t.Errorf("elo(%d, %d) changed the sum of ratings", tc.winner, tc.loser)
		}
	}
}
