//go:build tools

// Package tools pins the control plane localkube builds: one `go build` of
// these packages makes etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and kubectl (see testkit/src/localkube.rs).
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
