#!/usr/bin/env bash
# Re-vendor the JavaScript that standalone HTML reports embed (mdmlkit.nbtools.html_report).
# Run by hand when bumping versions, never at notebook run time; needs npm (registry only).
#   @jupyter-widgets/html-manager  dist/embed-amd.js  (BSD-3-Clause, ipywidgets)
#   requirejs                      require.js         (MIT)
# Files are stored gzip'ed (gzip -n: reproducible bytes); MANIFEST records the sha256 of
# the uncompressed files.
set -euo pipefail
HTML_MANAGER_VERSION="${HTML_MANAGER_VERSION:-1.0.15}"   # matches ipywidgets 8.1 (widget protocol 2)
REQUIREJS_VERSION="${REQUIREJS_VERSION:-2.3.8}"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "@jupyter-widgets/html-manager@${HTML_MANAGER_VERSION}" "requirejs@${REQUIREJS_VERSION}" >/dev/null
mkdir hm rq
tar xzf jupyter-widgets-html-manager-*.tgz -C hm
tar xzf requirejs-*.tgz -C rq
gzip -n -9 -c hm/package/dist/embed-amd.js > "$here/embed-amd.js.gz"
cp hm/package/dist/embed.js.LICENSE.txt "$here/embed-amd.THIRD-PARTY.txt"
gzip -n -9 -c rq/package/require.js > "$here/require.js.gz"
{
    echo "@jupyter-widgets/html-manager ${HTML_MANAGER_VERSION} dist/embed-amd.js sha256 $(sha256sum hm/package/dist/embed-amd.js | cut -d' ' -f1)"
    echo "requirejs ${REQUIREJS_VERSION} require.js sha256 $(sha256sum rq/package/require.js | cut -d' ' -f1)"
} > "$here/MANIFEST"
cat "$here/MANIFEST"
