// Package deploy holds the checks of the deployment files in this folder:
// Prometheus rules and their tests, the Grafana dashboard, the Kubernetes
// manifests, the CloudFormation template and the container build.
package deploy

import (
	"testing"

	"github.com/resetq/resetq/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
