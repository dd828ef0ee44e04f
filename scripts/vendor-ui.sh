#!/usr/bin/env bash
# Vendors the third-party browser JavaScript of the chat UI into adapters/http/ui/vendor/.
#
# Usage:
#   scripts/vendor-ui.sh          download the pinned packages and (re)write the vendor
#                                 directory: marked.js, purify.js, their licenses and
#                                 VERSIONS
#   scripts/vendor-ui.sh --check  download them again into a temporary directory and fail
#                                 (exit 1, with a diff) if anything differs from what is
#                                 committed in adapters/http/ui/vendor/ (for CI)
#
# Why vendored, not a CDN: the pages are embedded in the binary and must work offline and
# behind firewalls, and the Content-Security-Policy of every response allows scripts from
# 'self' only. So the files are committed, and this script is the one way they change.
#
# How: each package is fetched with `npm pack <name>@<version>` (the npm registry, through
# the ordinary client and its configuration), its tarball is checked against the sha512
# `integrity` pinned below (from `npm view <name>@<version> dist.integrity`), and one
# browser build plus the package's LICENSE is extracted, byte for byte. VERSIONS records the
# package, version, source path in the tarball and the sha256 of every written file. The
# output has no timestamps, so running the script twice gives identical files. The vendor
# directory holds exactly what this script writes; anything else in it is removed.
#
# To upgrade: change the version and integrity below, run the script, review the diff.
# Needs: bash, npm (and node), tar, sha256sum, diff.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENDOR="$ROOT/adapters/http/ui/vendor"

# One line per package:
# name|version|sha512 integrity of the tarball|file in the tarball|written as|license in the tarball|written as
PACKAGES=(
    "marked|18.3.0|sha512-ed8zmPXlBb3UfGXN5iHMQyMhFpdqLgoV5umUXx/Q1R+FW3q8VpqpyoKUwlENL9appo2UMvNLURDVaT3AMOryGA==|package/lib/marked.umd.js|marked.js|package/LICENSE|marked.LICENSE"
    "dompurify|3.5.0|sha512-LYC0ZkE8P1V42JsRYTwMdme/2ET8SpOc5AA2eOFjP/IadvRd2fwiT4TVz5vkfy0XUx12aS2UaRkTnfVPNOv9vw==|package/dist/purify.min.js|purify.js|package/LICENSE|purify.LICENSE"
)

die() {
    echo "vendor-ui: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 [--check]" >&2
    exit 2
}

CHECK=false
case "$#:${1:-}" in
    0:) ;;
    1:--check) CHECK=true ;;
    *) usage ;;
esac

for tool in npm node tar sha256sum diff; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required but not installed"
done

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
STAGE="$WORK/vendor"
mkdir -p "$STAGE"

# sha512 of a file in npm's `integrity` form (Subresource Integrity: base64 of the digest).
integrity_of() {
    node -e '
        const data = require("fs").readFileSync(process.argv[1]);
        process.stdout.write("sha512-" + require("crypto").createHash("sha512").update(data).digest("base64"));
    ' "$1"
}

sha256_of() {
    sha256sum "$1" | cut -d ' ' -f 1
}

# Extracts `member` of `tarball` to `destination` (mode 0644), failing if it is missing.
extract() {
    local tarball=$1 member=$2 destination=$3 unpack
    unpack=$(mktemp -d "$WORK/unpack.XXXXXX")
    tar -xzf "$tarball" -C "$unpack" "$member" 2>/dev/null || die "$member is not in $(basename "$tarball")"
    [[ -f "$unpack/$member" ]] || die "$member in $(basename "$tarball") is not a regular file"
    install -m 0644 "$unpack/$member" "$destination"
    rm -rf "$unpack"
}

{
    echo "# Third-party browser files of the chat UI, written by scripts/vendor-ui.sh: do not edit."
    echo "# Each is a file of the npm package's tarball, byte for byte; the tarball's sha512"
    echo "# integrity is pinned in the script. Check with: scripts/vendor-ui.sh --check"
    echo "# file package version source-in-tarball sha256"
} >"$STAGE/VERSIONS"

for line in "${PACKAGES[@]}"; do
    IFS='|' read -r name version expected source output license license_output <<<"$line"
    download="$WORK/npm-$name"
    mkdir -p "$download"
    # --ignore-scripts: packing a registry spec runs nothing anyway; this keeps it so.
    tarball_name=$(cd "$download" && npm pack "$name@$version" --ignore-scripts --silent) \
        || die "npm pack $name@$version failed"
    tarball="$download/$(tail -n 1 <<<"$tarball_name")"
    [[ -f "$tarball" ]] || die "npm pack $name@$version wrote no tarball"
    actual=$(integrity_of "$tarball")
    [[ "$actual" == "$expected" ]] \
        || die "$name@$version: the tarball's integrity $actual is not the pinned $expected"

    extract "$tarball" "$source" "$STAGE/$output"
    extract "$tarball" "$license" "$STAGE/$license_output"
    echo "$output $name $version $source $(sha256_of "$STAGE/$output")" >>"$STAGE/VERSIONS"
    echo "$license_output $name $version $license $(sha256_of "$STAGE/$license_output")" >>"$STAGE/VERSIONS"
done

if [[ "$CHECK" == true ]]; then
    [[ -d "$VENDOR" ]] || die "$VENDOR does not exist: run scripts/vendor-ui.sh"
    if ! diff -r "$STAGE" "$VENDOR" >"$WORK/diff" 2>&1; then
        # A binary or minified difference can be huge: show its start only.
        head -n 40 "$WORK/diff" | cut -c 1-200 >&2
        die "adapters/http/ui/vendor/ differs from the pinned packages: run scripts/vendor-ui.sh"
    fi
    echo "vendor-ui: adapters/http/ui/vendor/ matches the pinned packages"
    exit 0
fi

mkdir -p "$VENDOR"
# Remove what this script would not write, so the directory is exactly its output.
for existing in "$VENDOR"/* "$VENDOR"/.[!.]*; do
    [[ -e "$existing" ]] || continue
    [[ -e "$STAGE/$(basename "$existing")" ]] || rm -rf "$existing"
done
for staged in "$STAGE"/*; do
    install -m 0644 "$staged" "$VENDOR/$(basename "$staged")"
done
echo "vendor-ui: wrote $(cd "$VENDOR" && echo *) to adapters/http/ui/vendor/"
