#!/usr/bin/env bash
# Install the test dependencies, provision what the tests need, lint, type-check and run the
# whole suite. This is the README's test command; .ci/run calls it on a fresh machine.
#
#   bash scripts/test.sh [extra pytest arguments]
#
# Environment:
#   CATALOGUE_TEST_SEARCH_URL    use this OpenSearch cluster instead of starting one
#   CATALOGUE_TEST_DATABASE_URL  use this PostgreSQL server instead of the embedded one
#   TEST_WORKERS                 pytest-xdist workers (default 2)
#   CATALOGUE_CHROMIUM           the Chromium binary for the browser tests (default: chromium)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

step() { printf '\n==> %s\n' "$*"; }

step "Python dependencies"
python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'

step "Lint (ruff) and types (mypy)"
python3 -m ruff check catalogue tests
python3 -m mypy

CLUSTER_STARTED=0
cleanup() {
  if [ "$CLUSTER_STARTED" = 1 ]; then
    step "Stopping the OpenSearch test cluster"
    python3 deploy/opensearch/opensearch-cluster stop --data "$OS_DATA" || true
  fi
}
trap cleanup EXIT

if [ -z "${CATALOGUE_TEST_SEARCH_URL:-}" ]; then
  step "OpenSearch test cluster (3 nodes, from Maven Central)"
  python3 deploy/opensearch/opensearch-cluster prepare
  OS_DATA="$(mktemp -d /tmp/catalogue-opensearch.XXXXXX)"
  python3 deploy/opensearch/opensearch-cluster start --nodes 3 --data "$OS_DATA" \
      --base-http-port "${OS_BASE_HTTP_PORT:-9250}"
  CLUSTER_STARTED=1
  CATALOGUE_TEST_SEARCH_URL="$(python3 deploy/opensearch/opensearch-cluster status --data "$OS_DATA" --json \
      | python3 -c 'import json, sys; print(",".join(json.load(sys.stdin)["urls"]))')"
  export CATALOGUE_TEST_SEARCH_URL
fi
echo "search cluster: $CATALOGUE_TEST_SEARCH_URL"

step "Orthanc + DICOMweb plugin (Debian packages, for the DICOMweb test PACS)"
if ! { command -v Orthanc >/dev/null || [ -x /usr/sbin/Orthanc ]; } \
    || [ ! -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "Orthanc is missing and neither root nor sudo is available" >&2; exit 1; fi
  $SUDO apt-get update
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y orthanc orthanc-dicomweb
fi

step "Chromium (Debian package, for the browser tests driven by Playwright)"
if ! command -v chromium >/dev/null && [ -z "${CATALOGUE_CHROMIUM:-}" ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "Chromium is missing and neither root nor sudo is available" >&2; exit 1; fi
  $SUDO apt-get update
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

step "Test suite"
mkdir -p "$ROOT/test-artifacts"
python3 -m pytest -n "${TEST_WORKERS:-2}" --durations=15 \
    --junitxml="$ROOT/test-artifacts/junit.xml" "$@"
