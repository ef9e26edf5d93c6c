#!/bin/sh
# Fetch the second held-out set's manuals from Debian 12 (bookworm) packages into DIR
# (default: benchmarks/heldout2/pdfs, ignored by git) and check their sha256.
# Needs apt-get (after apt-get update), dpkg-deb and sha256sum.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dest=${1:-"$here/pdfs"}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download dicomscope-doc=3.6.0-25 vym=2.6.11-3+b2
dpkg-deb -x dicomscope-doc_*.deb x
dpkg-deb -x vym_*.deb x
cp x/usr/share/doc/dicomscope/dsum360.pdf "$dest/"
cp x/usr/share/doc/vym/vym.pdf "$dest/"
cp x/usr/share/doc/dicomscope-doc/copyright "$dest/dsum360.copyright"
cp x/usr/share/doc/vym/copyright "$dest/vym.copyright"
cd "$dest"
sha256sum -c "$here/SHA256SUMS"
