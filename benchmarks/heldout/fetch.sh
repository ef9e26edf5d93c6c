#!/bin/sh
# Fetch the held-out manuals from Debian 12 (bookworm) packages into DIR (default:
# benchmarks/heldout/pdfs, ignored by git) and check their sha256.
# Needs apt-get, dpkg-deb and sha256sum (any Debian/Ubuntu machine with bookworm sources).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dest=${1:-"$here/pdfs"}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download drbd-doc=8.4~20220106-1 debian-edu-doc-en=2.12.23~deb12u1
dpkg-deb -x drbd-doc_*.deb x
dpkg-deb -x debian-edu-doc-en_*.deb x
gunzip -c x/usr/share/doc/drbd-doc/drbd-users-guide.pdf.gz >"$dest/drbd-users-guide.pdf"
cp x/usr/share/doc/debian-edu-doc-en/debian-edu-bookworm-manual.pdf "$dest/"
cp x/usr/share/doc/drbd-doc/copyright "$dest/drbd-users-guide.copyright"
cp x/usr/share/doc/debian-edu-doc-en/copyright "$dest/debian-edu-bookworm-manual.copyright"
cd "$dest"
sha256sum -c "$here/SHA256SUMS"
