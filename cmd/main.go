// Command manager is Herald's operator: it watches Notifications, Templates,
// UserPreferences and providers, and delivers notifications.
package main

import (
	"bytes"
	"flag"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/herald-dev/herald/internal/manager"
)

func main() {
	o := manager.DefaultOptions()
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		o.Namespace = ns
	}
	o.InboundAddr = ":9443" // the binary serves inbound by default; tests and make dev opt in
	unsubKeyFile := manager.BindFlags(flag.CommandLine, &o)
	zo := zap.Options{}
	zo.BindFlags(flag.CommandLine)
	flag.Parse()

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zo)))
	log := ctrl.Log.WithName("setup")
	if *unsubKeyFile != "" {
		key, err := os.ReadFile(*unsubKeyFile)
		if err != nil {
			log.Error(err, "reading --unsubscribe-key-file")
			os.Exit(1)
		}
		o.UnsubscribeKey = bytes.TrimSpace(key)
	}

	cfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "no kubeconfig or in-cluster config")
		os.Exit(1)
	}
	mgr, err := manager.New(cfg, o)
	if err != nil {
		log.Error(err, "setting up the manager")
		os.Exit(1)
	}
	log.Info("starting manager", "namespace", o.Namespace, "leaderElection", o.LeaderElection)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "manager stopped with an error")
		os.Exit(1)
	}
}
