#!/usr/bin/env bash
# Brings up what the Docker tests need, on Debian or Ubuntu, and changes nothing that is already
# right (a second run takes about a second):
#   - packages: docker.io, docker-registry, busybox-static, apache2-utils (htpasswd), curl;
#   - a Docker Engine started as `dockerd --bridge=none --iptables=false --ip-masq=false`, so that
#     no bridge network (and no private address range) is ever created;
#   - two registries (Debian's docker-registry binary, not a container), on loopback only:
#     127.0.0.1:5000 open, 127.0.0.1:5001 with htpasswd auth (taskhost / taskhost-secret);
#   - test images imported from the busybox-static binary: busybox:1.35 and busybox:1.36;
#   - those images pushed to the registries under the names test/helpers/docker.ts expects.
# Nothing is pulled from the internet; nothing listens beyond 127.0.0.1.
# Usage: sudo scripts/docker-test-env.sh
set -euo pipefail
shopt -s inherit_errexit 2>/dev/null || true

readonly PACKAGES=(docker.io docker-registry busybox-static apache2-utils curl)
readonly LOG_DIR=/var/log/taskhost
readonly DOCKERD_LOG=$LOG_DIR/dockerd.log
readonly DOCKERD_FLAGS=(--bridge=none --iptables=false --ip-masq=false)
readonly REGISTRY_CONFIG_DIR=/etc/taskhost-registry
readonly REGISTRY_DATA_DIR=/var/lib/taskhost-registry
readonly PLAIN_REGISTRY=127.0.0.1:5000
readonly AUTH_REGISTRY=127.0.0.1:5001
readonly REGISTRY_USER=taskhost
readonly REGISTRY_PASSWORD=taskhost-secret
# Bump when the image recipe below changes: images without this label value are rebuilt.
readonly IMAGE_RECIPE=1
readonly IMAGE_LABEL=org.taskhost.test-image

changes=()
cleanup_paths=()
cleanup() { ((${#cleanup_paths[@]} == 0)) || rm -rf "${cleanup_paths[@]}"; }
trap cleanup EXIT
say() { echo "docker-test-env: $*"; }
warn() { echo "docker-test-env: warning: $*" >&2; }
die() { echo "docker-test-env: error: $*" >&2; exit 1; }
changed() { changes+=("$1"); say "$1"; }

# Everything is checked first and changed only when needed, so a user who is not root but can
# reach a fully prepared machine (docker group) still gets a clean pass.
need_root() {
  [[ $EUID -eq 0 ]] || die "must $1, which needs root: run sudo scripts/docker-test-env.sh"
}

# ---------------------------------------------------------------------------------------------
# Packages

installed() { [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]; }

install_packages() {
  command -v dpkg-query >/dev/null || die "this script needs Debian or Ubuntu (no dpkg-query found)"
  local missing=() pkg
  for pkg in "${PACKAGES[@]}"; do installed "$pkg" || missing+=("$pkg"); done
  ((${#missing[@]} == 0)) && return
  need_root "install ${missing[*]}"
  # The packages' maintainer scripts would start dockerd with its default bridge network and a
  # registry on 0.0.0.0:5000. A policy-rc.d that says "no" keeps them from starting any service;
  # this script starts what it needs itself, with the right flags.
  local policy=/usr/sbin/policy-rc.d log=$LOG_DIR/apt.log
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# Written by taskhost scripts/docker-test-env.sh while it installs packages.\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    cleanup_paths+=("$policy")
  fi
  mkdir -p "$LOG_DIR"
  say "installing ${missing[*]} (log: $log)"
  export DEBIAN_FRONTEND=noninteractive
  # Try with the package lists at hand first; refresh them only when that fails.
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
    if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } >>"$log" 2>&1; then
      tail -20 "$log" >&2
      die "apt-get could not install ${missing[*]} (last lines of $log above)"
    fi
  fi
  changed "installed ${missing[*]}"
}

# ---------------------------------------------------------------------------------------------
# Docker Engine

dockerd_running() { command -v pidof >/dev/null && pidof dockerd >/dev/null; }

start_dockerd() {
  local err
  if ! err=$(docker info 2>&1 >/dev/null); then
    [[ $EUID -eq 0 ]] || die "cannot reach the Docker engine as $(id -un) (${err%%$'\n'*}): run sudo scripts/docker-test-env.sh"
    if ! dockerd_running; then
      need_root "start dockerd"
      mkdir -p "$LOG_DIR"
      say "starting dockerd ${DOCKERD_FLAGS[*]} (log: $DOCKERD_LOG)"
      setsid dockerd "${DOCKERD_FLAGS[@]}" >>"$DOCKERD_LOG" 2>&1 </dev/null &
      changed "started dockerd"
    else
      say "dockerd is running but not answering yet; waiting"
    fi
    local waited=0
    until docker info >/dev/null 2>&1; do
      if ((waited >= 60)); then
        tail -20 "$DOCKERD_LOG" >&2 2>/dev/null || true
        die "dockerd did not answer within 60s (last lines of $DOCKERD_LOG above)"
      fi
      sleep 1
      waited=$((waited + 1))
    done
  fi
  if [[ -e /sys/class/net/docker0 ]]; then
    warn "a docker0 bridge exists: this engine was not started with ${DOCKERD_FLAGS[*]}; tests never use it, but stop that engine and rerun this script to be sure"
  fi
}

# ---------------------------------------------------------------------------------------------
# Registries

http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$@" || true; }

write_if_changed() { # file mode; content on stdin
  local tmp
  tmp=$(mktemp)
  cat >"$tmp"
  if [[ -f $1 ]] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; return; fi
  install -m "$2" "$tmp" "$1"
  rm -f "$tmp"
  changed "wrote $1"
}

registry_config() { # name addr [htpasswd file]
  cat <<EOF
# Written by taskhost scripts/docker-test-env.sh: a test registry on loopback only.
version: 0.1
log:
  level: info
  fields:
    service: taskhost-registry-$1
storage:
  filesystem:
    rootdirectory: $REGISTRY_DATA_DIR/$1
  delete:
    enabled: true
http:
  addr: $2
  secret: taskhost-test-registry-$1
  headers:
    X-Content-Type-Options: [nosniff]
EOF
  if [[ -n ${3:-} ]]; then
    cat <<EOF
auth:
  htpasswd:
    realm: taskhost-test-registry
    path: $3
EOF
  fi
}

# Starts one registry unless its port already answers as expected (200 open, 401 with auth).
start_registry() { # name addr expected-code [htpasswd file]
  local name=$1 addr=$2 expected=$3 htpasswd_file=${4:-} code
  code=$(http_code "http://$addr/v2/")
  if [[ $code == "$expected" ]]; then return; fi
  [[ $code == 000 ]] || die "something on $addr answers /v2/ with HTTP $code, not $expected: stop it and rerun"
  need_root "start the $name registry on $addr"
  mkdir -p "$REGISTRY_CONFIG_DIR" "$REGISTRY_DATA_DIR/$name" "$LOG_DIR"
  local config=$REGISTRY_CONFIG_DIR/$name.yml log=$LOG_DIR/registry-$name.log
  write_if_changed "$config" 644 < <(registry_config "$name" "$addr" "$htpasswd_file")
  say "starting the $name registry on $addr (log: $log)"
  setsid docker-registry serve "$config" >>"$log" 2>&1 </dev/null &
  changed "started the $name registry on $addr"
  local waited=0
  until [[ $(http_code "http://$addr/v2/") == "$expected" ]]; do
    if ((waited >= 100)); then
      tail -20 "$log" >&2 2>/dev/null || true
      die "the $name registry on $addr did not answer within 10s (last lines of $log above)"
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
}

start_registries() {
  start_registry plain "$PLAIN_REGISTRY" 200
  local htpasswd_file=$REGISTRY_CONFIG_DIR/auth.htpasswd
  if [[ $(http_code "http://$AUTH_REGISTRY/v2/") != 401 ]]; then
    # docker-registry accepts bcrypt hashes only, hence htpasswd -B.
    if [[ ! -f $htpasswd_file ]] || ! htpasswd -vb "$htpasswd_file" "$REGISTRY_USER" "$REGISTRY_PASSWORD" >/dev/null 2>&1; then
      need_root "write $htpasswd_file"
      mkdir -p "$REGISTRY_CONFIG_DIR"
      write_if_changed "$htpasswd_file" 600 < <(htpasswd -Bbn "$REGISTRY_USER" "$REGISTRY_PASSWORD")
    fi
    start_registry auth "$AUTH_REGISTRY" 401 "$htpasswd_file"
  fi
  local code
  code=$(http_code -u "$REGISTRY_USER:$REGISTRY_PASSWORD" "http://$AUTH_REGISTRY/v2/")
  [[ $code == 200 ]] || die "the registry on $AUTH_REGISTRY refuses $REGISTRY_USER/$REGISTRY_PASSWORD (HTTP $code): is it another registry? stop it and rerun"
}

# ---------------------------------------------------------------------------------------------
# Images

image_recipe() { docker image inspect -f "{{index .Config.Labels \"$IMAGE_LABEL\"}}" "$1" 2>/dev/null || true; }

# Fills a directory with a busybox root filesystem: every applet linked in /bin, a passwd file, /tmp.
fill_busybox_rootfs() { # dir
  local rootfs=$1 busybox applet
  busybox=$(dpkg -L busybox-static | grep -m1 '/bin/busybox$') || die "busybox-static has no /bin/busybox"
  mkdir -p "$rootfs"/{bin,etc,root,tmp}
  chmod 1777 "$rootfs/tmp"
  install -m 755 "$busybox" "$rootfs/bin/busybox"
  for applet in $("$busybox" --list); do
    [[ $applet == busybox ]] || ln -s busybox "$rootfs/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
}

# Imports busybox:<tag> unless an image built by this recipe is there already.
build_image() { # tag greeting
  local image=busybox:$1 old rootfs
  [[ $(image_recipe "$image") == "$IMAGE_RECIPE" ]] && return
  need_root "build $image"
  old=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
  rootfs=$(mktemp -d)
  cleanup_paths+=("$rootfs")
  fill_busybox_rootfs "$rootfs"
  tar -C "$rootfs" --numeric-owner --owner=0 --group=0 -c . | docker import \
    -c 'ENV PATH=/bin' \
    -c "ENV IMAGE_GREETING=$2" \
    -c "ENV BUSYBOX_IMAGE_TAG=$1" \
    -c "LABEL $IMAGE_LABEL=$IMAGE_RECIPE" \
    -c 'CMD ["sh"]' \
    -m "taskhost test image (scripts/docker-test-env.sh)" - "$image" >/dev/null
  changed "built $image"
  # An older image that lost its tag to the new one: drop it unless a container still uses it.
  if [[ -n $old ]] && [[ $(docker image inspect -f '{{len .RepoTags}}' "$old" 2>/dev/null || echo 1) == 0 ]]; then
    docker image rm "$old" >/dev/null 2>&1 || say "kept the old image $old (a container still uses it)"
  fi
}

# The image id a registry holds for name:tag, or nothing when it has no such tag.
registry_image_id() { # registry repository tag [curl args...]
  local registry=$1 repository=$2 tag=$3
  shift 3
  curl -fsS --max-time 5 "$@" \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$registry/v2/$repository/manifests/$tag" 2>/dev/null \
    | grep -o '"digest": *"sha256:[0-9a-f]*"' | head -1 | grep -o 'sha256:[0-9a-f]*' || true
}

# Pushes a local image unless the registry holds the same image (same config digest) already.
push_image() { # local-image registry repository tag [curl args...]
  local source=$1 registry=$2 repository=$3 tag=$4
  shift 4
  local target=$registry/$repository:$tag id had_target= out
  id=$(docker image inspect -f '{{.Id}}' "$source")
  [[ $(registry_image_id "$registry" "$repository" "$tag" "$@") == "$id" ]] && return
  docker image inspect "$target" >/dev/null 2>&1 && had_target=1
  docker tag "$source" "$target"
  out=$(docker push -q "$target" 2>&1) || die "docker push $target failed: $out"
  # Untag the local copy again (unless it was there before), so tests see the image arrive by pulling.
  [[ -n $had_target ]] || docker image rm "$target" >/dev/null
  changed "pushed $target"
}

push_images() {
  push_image busybox:1.35 "$PLAIN_REGISTRY" library/busybox 1.35
  push_image busybox:1.35 "$PLAIN_REGISTRY" team/tools/busybox 1.35
  local auth=(-u "$REGISTRY_USER:$REGISTRY_PASSWORD")
  if [[ $(registry_image_id "$AUTH_REGISTRY" private/busybox 1.35 "${auth[@]}") != $(docker image inspect -f '{{.Id}}' busybox:1.35) ]]; then
    # Log in with a throwaway client config: no credentials stay behind, so tests must bring their own.
    DOCKER_CONFIG=$(mktemp -d)
    cleanup_paths+=("$DOCKER_CONFIG")
    export DOCKER_CONFIG
    local out
    # Quiet on success: docker login warns that the (throwaway) config stores the password.
    out=$(printf '%s' "$REGISTRY_PASSWORD" | docker login -u "$REGISTRY_USER" --password-stdin "$AUTH_REGISTRY" 2>&1) \
      || die "docker login $AUTH_REGISTRY failed: $out"
    push_image busybox:1.35 "$AUTH_REGISTRY" private/busybox 1.35 "${auth[@]}"
    docker logout "$AUTH_REGISTRY" >/dev/null
    unset DOCKER_CONFIG
  fi
}

# ---------------------------------------------------------------------------------------------

main() {
  [[ $EUID -eq 0 ]] || say "not running as root: checking only; anything missing will need sudo"
  install_packages
  start_dockerd
  start_registries
  build_image 1.35 from-image
  build_image 1.36 from-image-1.36
  push_images
  local engine
  engine=$(docker version -f '{{.Server.Version}} (API {{.Server.APIVersion}})')
  say "ready: Docker Engine $engine; registries $PLAIN_REGISTRY (open), $AUTH_REGISTRY (htpasswd $REGISTRY_USER); images busybox:1.35, busybox:1.36, $PLAIN_REGISTRY/library/busybox:1.35, $PLAIN_REGISTRY/team/tools/busybox:1.35, $AUTH_REGISTRY/private/busybox:1.35; $( ((${#changes[@]})) && echo "${#changes[@]} change(s)" || echo "nothing changed")"
}

main "$@"
