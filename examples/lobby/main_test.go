package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no goroutine outlives the tests; the parallel tests
// cannot check it one by one, as each would see the others' goroutines.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
