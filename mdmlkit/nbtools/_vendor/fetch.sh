#!/usr/bin/env bash
# Re-vendor the JavaScript that standalone HTML reports embed (mdmlkit.nbtools.html_report).
# Run by hand when bumping versions, never at notebook run time; needs npm (registry only).
#   @jupyter-widgets/html-manager  dist/embed-amd.js  (BSD-3-Clause, ipywidgets)
#   requirejs                      require.js         (MIT)
#   mathjax                        es5/tex-svg.js     (Apache-2.0; TeX -> SVG, no font files needed)
#   @fortawesome/fontawesome-free  webfonts/fa-{solid-900,regular-400}.woff2 (the icon fonts of the
#                                  widget buttons; embed-amd.js has the CSS, not the fonts; SIL OFL 1.1)
# Files are stored gzip'ed (gzip -n: reproducible bytes); MANIFEST records the sha256 of
# the uncompressed files.
set -euo pipefail
HTML_MANAGER_VERSION="${HTML_MANAGER_VERSION:-1.0.15}"   # matches ipywidgets 8.1 (widget protocol 2)
REQUIREJS_VERSION="${REQUIREJS_VERSION:-2.3.8}"
MATHJAX_VERSION="${MATHJAX_VERSION:-3.2.2}"
FONTAWESOME_VERSION="${FONTAWESOME_VERSION:-5.15.4}"   # the version JupyterLab 4 ships
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "@jupyter-widgets/html-manager@${HTML_MANAGER_VERSION}" "requirejs@${REQUIREJS_VERSION}" \
    "mathjax@${MATHJAX_VERSION}" "@fortawesome/fontawesome-free@${FONTAWESOME_VERSION}" >/dev/null
mkdir hm rq mj fa
tar xzf jupyter-widgets-html-manager-*.tgz -C hm
tar xzf requirejs-*.tgz -C rq
tar xzf mathjax-*.tgz -C mj
tar xzf fortawesome-fontawesome-free-*.tgz -C fa
gzip -n -9 -c mj/package/es5/tex-svg.js > "$here/mathjax-tex-svg.js.gz"
cp mj/package/LICENSE "$here/LICENSE.mathjax"
cp fa/package/webfonts/fa-solid-900.woff2 fa/package/webfonts/fa-regular-400.woff2 "$here/"
cp fa/package/LICENSE.txt "$here/LICENSE.fontawesome"
gzip -n -9 -c hm/package/dist/embed-amd.js > "$here/embed-amd.js.gz"
cp hm/package/dist/embed.js.LICENSE.txt "$here/embed-amd.THIRD-PARTY.txt"
gzip -n -9 -c rq/package/require.js > "$here/require.js.gz"
{
    echo "@jupyter-widgets/html-manager ${HTML_MANAGER_VERSION} dist/embed-amd.js sha256 $(sha256sum hm/package/dist/embed-amd.js | cut -d' ' -f1)"
    echo "requirejs ${REQUIREJS_VERSION} require.js sha256 $(sha256sum rq/package/require.js | cut -d' ' -f1)"
    echo "mathjax ${MATHJAX_VERSION} es5/tex-svg.js sha256 $(sha256sum mj/package/es5/tex-svg.js | cut -d' ' -f1)"
    for f in fa-solid-900.woff2 fa-regular-400.woff2; do
        echo "@fortawesome/fontawesome-free ${FONTAWESOME_VERSION} webfonts/$f sha256 $(sha256sum fa/package/webfonts/$f | cut -d' ' -f1)"
    done
} > "$here/MANIFEST"
cat "$here/MANIFEST"
