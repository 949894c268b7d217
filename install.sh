#!/bin/sh
# Install maestro-sh: the binary under PREFIX/bin and a shims dir with `bash` and `sh` links.
#
#   sh install.sh [--prefix DIR]     build and install (default prefix: ~/.local); idempotent
#   sh install.sh --uninstall [--prefix DIR]
#                                    remove exactly what an install put there
#   sh install.sh --protect [--group NAME|GID] [--config FILE] [--prefix DIR]   (as root)
#                                    protected mode (SECURITY.md): default prefix /usr/local,
#                                    maestro-sh setgid to a dedicated group (default maestro-sh,
#                                    created if missing) that alone reads
#                                    PREFIX/etc/maestro-sh/platform.json (from --config FILE:
#                                    {"url","token","organization_id","workspace_id"[,"ca_file"]
#                                    [,"governance":"governed"]}; governance: a floor no flags
#                                    snapshot can lower)
set -eu

prefix=
uninstall=false
protect=false
group=maestro-sh
config=
while [ $# -gt 0 ]; do
    case "$1" in
    --prefix) [ $# -ge 2 ] || { echo "install.sh: --prefix needs a directory" >&2; exit 2; }
              prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    --uninstall) uninstall=true; shift ;;
    --protect) protect=true; shift ;;
    --group) [ $# -ge 2 ] || { echo "install.sh: --group needs a name or gid" >&2; exit 2; }
             group=$2; shift 2 ;;
    --config) [ $# -ge 2 ] || { echo "install.sh: --config needs a file" >&2; exit 2; }
              config=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
if [ -z "$prefix" ]; then
    if $protect; then prefix=/usr/local; else prefix="${HOME:?HOME is not set; pass --prefix DIR}/.local"; fi
fi
if $protect && [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: --protect needs root (it creates a group, and installs maestro-sh setgid to it)" >&2
    exit 2
fi

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
# MAESTRO_SH_DIST: install already-built binaries from that directory (tests) instead of building.
dist=${MAESTRO_SH_DIST:-$("$src/scripts/build-release.sh")}

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

if $protect; then
    etc="$prefix/etc/maestro-sh"
    conf="$etc/platform.json"
    case "$group" in
    *[!0-9]*)
        if ! getent group "$group" >/dev/null; then
            groupadd --system "$group" 2>/dev/null || addgroup -S "$group"
            echo "created the system group $group"
        fi ;;
    esac
    mkdir -p "$etc"
    chmod 755 "$etc"
    if [ -n "$config" ]; then
        cp "$config" "$conf.tmp"
        mv -f "$conf.tmp" "$conf"
        echo "installed $config as $conf"
    elif [ ! -f "$conf" ]; then
        echo "install.sh: no $conf yet; pass --config FILE with" >&2
        echo '  {"url": "https://platform.example.com", "token": "...", "organization_id": "...", "workspace_id": "..."}' >&2
        exit 2
    fi
    chown "root:$group" "$conf"
    chmod 640 "$conf"
    chown "root:$group" "$bindir/maestro-sh"
    chmod 2755 "$bindir/maestro-sh"
    echo "$conf" >> "$manifest"
    cat <<MSG
protected mode: $bindir/maestro-sh is setgid $group (mode 2755) and $conf is root:$group
mode 640. maestro-sh opens it with the group and drops the group at once; the Platform URL,
tenant and token come only from it, so a command running as you cannot read the token or send
it elsewhere. Remove Platform tokens from your own environment and credentials files.
Check: $bindir/maestro-sh --doctor   (token custody: protected)
MSG
fi

cat <<MSG
installed maestro-sh to $bindir/maestro-sh (shims in $shimdir)

Enable it for Maestro (its Bash tool runs \$SHELL -c '<command>'):
    export SHELL="$bindir/maestro-sh"
Or for every bash and sh started from this environment:
    export PATH="$shimdir:\$PATH"
Check what it would do here:
    $bindir/maestro-sh --doctor
MSG
