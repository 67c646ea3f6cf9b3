#!/usr/bin/env bash
# Builds the Go test client of the Nomad bridge (test/bridges/nomad/go-client): go-plugin's real
# client code, from Debian's packages, in GOPATH mode, with Go code generated from
# bridges/nomad/proto by protoc. Installs the packages when they are missing (as root, or with
# sudo). Idempotent; the binary is .cache/go-plugin-client/nomad-go-client.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# golang-github-golang-protobuf-1-5-dev by name: the default 1-3 conflicts with the new protobuf.
packages=(golang-go golang-github-hashicorp-go-plugin-dev golang-google-grpc-dev golang-github-golang-protobuf-1-5-dev
  golang-google-protobuf-dev protobuf-compiler protoc-gen-go protoc-gen-go-grpc)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}"
fi

cache=$root/.cache/go-plugin-client
gopath=$cache/gopath
rm -rf "$gopath/src/taskhost.test"
mkdir -p "$gopath/src/taskhost.test/goclient"

# Go code for the services the client calls. Not health.proto or go-plugin.proto: go-plugin and
# grpc bring their own, and protobuf refuses two registrations of one message name.
protos=()
for f in bridges/nomad/proto/*.proto; do
  case "$(basename "$f")" in health.proto | go-plugin.proto) ;; *) protos+=("$(basename "$f")") ;; esac
done
protoc -I bridges/nomad/proto --go_out="$gopath/src" --go-grpc_out="$gopath/src" "${protos[@]}"

cp test/bridges/nomad/go-client/*.go "$gopath/src/taskhost.test/goclient/"
GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOCACHE="$cache/gocache" GOFLAGS= \
  go build -o "$cache/nomad-go-client" taskhost.test/goclient
echo "== built $cache/nomad-go-client"
