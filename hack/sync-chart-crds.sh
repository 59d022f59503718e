#!/usr/bin/env bash
# Copy the CustomResourceDefinitions from crds/ (the source of truth) into the Helm chart's
# crds/ folder, byte for byte. tests/integration/test_chart.py fails when they differ.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/charts/igor/crds"
mkdir -p "$dest"
# Drop chart copies whose source is gone, then copy every source file.
for copy in "$dest"/*.yaml; do
  [ -e "$copy" ] || continue
  [ -e "$root/crds/$(basename "$copy")" ] || rm -f -- "$copy"
done
cp -- "$root"/crds/*.yaml "$dest"/
echo "synced $(ls "$root"/crds/*.yaml | wc -l) CRDs into charts/igor/crds/"
