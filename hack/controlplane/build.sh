#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kubectl and helm from
# the Go module proxy into a cache folder keyed by every input (go.mod,
# go.sum, this script, the Go version). A second run with the same inputs
# only prints the folder. Prints the bin folder on the last line of stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
K8S_VERSION="v1.37.2"
K8S_MINOR="37"
HELM_VERSION="v3.22.0"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
cache_root="${IGOR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/igor}/controlplane"
key="$( (cat "$here/go.mod" "$here/go.sum" "$here/build.sh"; go version) | sha256sum | cut -c1-16)"
bin="$cache_root/$key/bin"

binaries=(etcd kube-apiserver kube-controller-manager kubectl helm)
all_present() { for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || return 1; done; }

if all_present; then
  echo "control plane binaries up to date (key $key)" >&2
  echo "$bin"
  exit 0
fi

mkdir -p "$bin"
stamp="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  stamp+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$K8S_MINOR"
  stamp+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

build() { # name package
  local name="$1" pkg="$2" start=$SECONDS
  [[ -x "$bin/$name" ]] && return 0
  echo ">> building $name ($pkg)" >&2
  (cd "$here" && go build -trimpath -ldflags "$stamp" -o "$bin/$name.tmp" "$pkg")
  mv "$bin/$name.tmp" "$bin/$name"
  echo ">> built $name in $((SECONDS - start))s" >&2
}

# One link at a time: each takes ~2 GiB and the machine has 2 cores.
build etcd go.etcd.io/etcd/server/v3
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build kubectl k8s.io/kubernetes/cmd/kubectl

if [[ ! -x "$bin/helm" ]]; then
  echo ">> building helm $HELM_VERSION" >&2
  start=$SECONDS
  # Helm's go.mod has no replace directives, so `go install` works as is.
  # The ldflags tell `helm template` which Kubernetes it targets by default.
  GOFLAGS= GOBIN="$bin" go install -trimpath -ldflags "-s -w \
    -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 \
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$K8S_MINOR \
    -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 \
    -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$K8S_MINOR" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  echo ">> built helm in $((SECONDS - start))s" >&2
fi
echo "$bin"
