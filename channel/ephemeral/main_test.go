package ephemeral

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test must leave no owner goroutine behind: that is the package's
// promise (expiry and Shutdown end them), so it is checked for all tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
