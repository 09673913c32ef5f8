// Package tools pins the tools Herald's Makefile builds (see go.mod's tool
// directives) and the prometheus-operator API types that `make
// monitoring-crds` generates the test API server's ServiceMonitor and
// PrometheusRule CRDs from.
package tools

import _ "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
