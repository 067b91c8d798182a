// Package e2e runs the built resetq binary as a user would, against
// moto_server (SQS and Cognito) with the project's quota/fault proxy in
// front of Cognito. The bench itself is internal/testenv.
package e2e

import (
	"testing"

	"github.com/resetq/resetq/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
