// Package scheme builds the runtime scheme Herald's clients share: the
// Kubernetes built-ins plus the notify.herald.dev kinds.
package scheme

import (
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// New returns a scheme with the Kubernetes built-ins and Herald's kinds.
func New() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return s
}
