#!/bin/sh
# Install maestro-sh: the binary under PREFIX/bin and a shims dir with `bash` and `sh` links.
#
#   sh install.sh [--prefix DIR]     build and install (default prefix: ~/.local); idempotent
#   sh install.sh --uninstall [--prefix DIR]
#                                    remove exactly what an install put there
set -eu

prefix="${HOME:?HOME is not set; pass --prefix DIR}/.local"
uninstall=false
while [ $# -gt 0 ]; do
    case "$1" in
    --prefix) [ $# -ge 2 ] || { echo "install.sh: --prefix needs a directory" >&2; exit 2; }
              prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    --uninstall) uninstall=true; shift ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done

bindir="$prefix/bin"
sharedir="$prefix/share/maestro-sh"
shimdir="$sharedir/shims"
manifest="$sharedir/installed-files"

if $uninstall; then
    if [ ! -f "$manifest" ]; then
        echo "install.sh: nothing to uninstall under $prefix (no $manifest)"
        exit 0
    fi
    while IFS= read -r f; do
        [ -n "$f" ] && rm -f "$f"
    done < "$manifest"
    rm -f "$manifest"
    rmdir "$shimdir" "$sharedir" 2>/dev/null || true
    echo "removed maestro-sh from $prefix"
    exit 0
fi

src=$(cd "$(dirname "$0")" && pwd)
dist=$("$src/scripts/build-release.sh")

mkdir -p "$bindir" "$shimdir"
for bin in maestro-sh maestro-platform-dev; do
    # Copy then rename: a shim that is running right now keeps its old inode.
    cp "$dist/$bin" "$bindir/.$bin.tmp"
    mv -f "$bindir/.$bin.tmp" "$bindir/$bin"
done
for name in bash sh; do
    ln -sfn "$bindir/maestro-sh" "$shimdir/$name"
done
printf '%s\n' "$bindir/maestro-sh" "$bindir/maestro-platform-dev" "$shimdir/bash" "$shimdir/sh" > "$manifest"

cat <<MSG
installed maestro-sh to $bindir/maestro-sh (shims in $shimdir)

Enable it for Maestro (its Bash tool runs \$SHELL -c '<command>'):
    export SHELL="$bindir/maestro-sh"
Or for every bash and sh started from this environment:
    export PATH="$shimdir:\$PATH"
Check what it would do here:
    $bindir/maestro-sh --doctor
MSG
