//go:build tools

// Blank imports keep the binaries' packages (and so their whole dependency
// graph) in go.mod and go.sum, so `go build` of each main package is
// reproducible from the committed go.sum alone.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
