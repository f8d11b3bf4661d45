package cluster

import (
	"os"
	"strings"
	"testing"

	"go.uber.org/zap"
	"k8s.io/client-go/rest"
)

// Outside a pod the Kubernetes provider has no namespace to work in: the
// start stops there and says so, before any request (the API server's
// answers are checked by make test-kube, cmd/vitrine/kube_integration_test.go).
func TestKubernetesOutsideAPod(t *testing.T) {
	if _, err := os.Stat(serviceAccountNamespace); err == nil {
		t.Skipf("%s exists: this runs in a pod", serviceAccountNamespace)
	}
	err := checkPodAccess(&rest.Config{Host: "https://127.0.0.1:1"}, zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "is this a pod with a service account?") {
		t.Fatalf("checkPodAccess outside a pod: %v", err)
	}
}
