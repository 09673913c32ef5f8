// Package controllers holds one thin reconciler per kind: get the object, ask
// the packages that decide (internal/render, internal/policy,
// internal/dispatch, senders/registry), and write status through one path.
package controllers

import (
	"time"

	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/herald-dev/herald/internal/dispatch"
)

// Config is what the reconcilers share.
type Config struct {
	// Namespace holds the Secrets of ClusterChannelProviders.
	Namespace               string
	DefaultTTLAfterFinished time.Duration
	DedupWindow             time.Duration
	OutboxDir               string
	Clock                   clock.PassiveClock
	// Dispatcher holds one send queue per provider: provider reconcilers
	// keep it in step with the providers, the Notification reconciler submits to it.
	Dispatcher *dispatch.Dispatcher
}

// Setup registers every controller with the manager.
func Setup(mgr ctrl.Manager, cfg Config) error {
	sw := statusWriter{Client: mgr.GetClient(), Events: mgr.GetEventRecorder("herald")}
	for _, r := range []interface{ SetupWithManager(ctrl.Manager) error }{
		&NotificationReconciler{Client: mgr.GetClient(), Config: cfg},
		&TemplateReconciler{statusWriter: sw},
		&UserPreferenceReconciler{statusWriter: sw},
	} {
		if err := r.SetupWithManager(mgr); err != nil {
			return err
		}
	}
	return nil
}
