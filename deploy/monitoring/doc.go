// Package monitoring holds the tests that keep deploy/k8s/components/monitoring
// consistent: the PrometheusRule carries exactly the groups of the rule file
// that promtool tests (`go test ./deploy/monitoring -update` rewrites it),
// and the Grafana dashboard is valid JSON whose every query names a metric
// that mailroom exports.
package monitoring
