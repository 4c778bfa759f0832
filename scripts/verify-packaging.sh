#!/usr/bin/env bash
# Builds and runs the Docker image without a Docker engine, and checks the
# systemd unit without systemd as PID 1 (docs/deployment.md#what-was-verified).
#
#   sudo scripts/verify-packaging.sh          (or: npm run verify:packaging, as root)
#
# Needs root, Debian's buildah, podman, runc, debootstrap and systemd-container
# (apt-get install -y buildah podman runc debootstrap systemd-container),
# systemd-analyze (package systemd), node 20,
# the npm registry and deb.debian.org. Not part of .ci/run: it takes minutes
# and needs apt packages.
#
# 1. A stand-in for node:20-bookworm-slim (Docker Hub is not reachable here):
#    `debootstrap --variant=minbase bookworm`, slimmed like Debian's slim
#    images (no docs, man pages, locales, apt lists), this machine's node 20
#    and npm in /usr/local, a `node` user and group with uid/gid 1000 like the
#    official image; committed as docker.io/library/node:20-bookworm-slim.
# 2. The repository's Dockerfile, as it is, built by `buildah bud` (docker
#    format, so HEALTHCHECK is kept; chroot isolation, vfs storage).
# 3. The image run by podman (runc, host network, cgroupfs) against an
#    embedded PostgreSQL HQ and store (scripts/packaging-world.ts):
#    `branchline install` from the image, then the agent: non-root, a sale
#    replicated store -> HQ, `podman healthcheck run` healthy with `http:` and
#    unhealthy without (also once the start period is over), SIGTERM -> exit
#    0, the image's size.
# 4. ops/systemd/branchline.service: `systemd-analyze verify` in a throwaway
#    root holding every path the unit names (any message fails: verify exits
#    0 on unknown keys and bad values), and `systemd-analyze security`.
# 5. The unit started by systemd as PID 1: a bookworm with systemd booted by
#    `systemd-nspawn --boot` (host network), the unit installed and enabled:
#    active as branchline with its hardening, a sale store -> HQ, /health,
#    restarted after SIGKILL, `systemctl stop` -> exit 0, a configuration
#    error (exit 2) not restarted.
#
# Everything lives under $BRANCHLINE_PACKAGING_DIR (default
# /var/tmp/branchline-packaging) in its own container storage, so no other
# image or container on the machine is touched. At the end the containers,
# both images, the server and the temporary folders are removed; only the
# debootstrap tarball stays (cache/, reused by the next run; --clean removes
# it too). --keep keeps the images (for a look with the commands printed).
# Exit 0 when every check passed, 1 when one failed, 2 when something needed
# is missing.
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${BRANCHLINE_PACKAGING_DIR:-/var/tmp/branchline-packaging}
BASE_IMAGE=docker.io/library/node:20-bookworm-slim
IMAGE=localhost/branchline:verify-packaging
CTR_HTTP=branchline-verify-http
CTR_NO_HTTP=branchline-verify-no-http
KEEP=0
CLEAN=0
for arg in "$@"; do
  case "$arg" in
    --keep) KEEP=1 ;;
    --clean) CLEAN=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "verify-packaging: unknown option $arg (--keep, --clean)" >&2; exit 2 ;;
  esac
done

STORAGE=(--root "$WORK/storage" --runroot "$WORK/run" --storage-driver vfs)
BUILDAH=(buildah "${STORAGE[@]}")
# runc, not Debian's default crun: crun refuses a host with cgroup v1
# controllers and one on the v2 hierarchy ("cgroups in hybrid mode not
# supported"), as this VM has. No systemd here: podman cannot add the timers
# that would run the health check every 30 s (it logs so); the checks below
# run it with `podman healthcheck run`, as the timer would.
PODMAN=(podman "${STORAGE[@]}" --cgroup-manager cgroupfs --events-backend file --runtime runc)
# Resource limits the container may have: podman asks for nofile 1048576 and
# lowers its own nproc to 32768, and root here lacks CAP_SYS_RESOURCE, so any
# higher limit is refused (EPERM from setrlimit).
nproc_max=$(ulimit -Hu)
[ "$nproc_max" = unlimited ] || [ "$nproc_max" -gt 32768 ] && nproc_max=32768
LIMITS=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit "nproc=$nproc_max:$nproc_max")

FAILED=0
RESULTS=()
pass() { RESULTS+=("PASS  $1"); echo "PASS  $1"; }
fail() { RESULTS+=("FAIL  $1"); echo "FAIL  $1"; FAILED=1; }
info() { echo "      $1"; }
step() { echo; echo "== $1"; }

need() {
  local missing=()
  [ "$(id -u)" = 0 ] || { echo "verify-packaging: run it as root (buildah and podman with their own storage, debootstrap)." >&2; exit 2; }
  for tool in buildah podman runc debootstrap systemd-analyze systemd-nspawn nsenter node tar; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "verify-packaging: missing ${missing[*]}: apt-get install -y buildah podman runc debootstrap systemd systemd-container" >&2
    exit 2
  fi
  [ -x /usr/bin/node ] || { echo "verify-packaging: the stand-in base image copies /usr/bin/node (node 20): not found." >&2; exit 2; }
  case "$(node --version)" in v20.*) ;; *) echo "verify-packaging: node $(node --version) here; the stand-in for node:20 needs node 20." >&2; exit 2 ;; esac
}

WORLD_PID=
NSPAWN_PID=
TMP=
# The world stops when its stdin (fd 3 here) closes; after 60 s it is killed.
stop_world() {
  [ -n "$WORLD_PID" ] || return 0
  exec 3>&-
  for _ in $(seq 1 60); do kill -0 "$WORLD_PID" 2>/dev/null || break; sleep 1; done
  kill -0 "$WORLD_PID" 2>/dev/null && kill -KILL "$WORLD_PID"
  wait "$WORLD_PID" 2>/dev/null
  WORLD_PID=
}
cleanup() {
  local rc=$?
  set +e
  for c in "$CTR_HTTP" "$CTR_NO_HTTP"; do "${PODMAN[@]}" rm -f -t 0 "$c" >/dev/null 2>&1; done
  if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
    kill -TERM "$NSPAWN_PID"
    for _ in $(seq 1 20); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 1; done
    kill -0 "$NSPAWN_PID" 2>/dev/null && kill -KILL "$NSPAWN_PID"
  fi
  stop_world
  if [ "$KEEP" = 0 ]; then
    "${BUILDAH[@]}" rm --all >/dev/null 2>&1
    "${BUILDAH[@]}" rmi -f "$IMAGE" "$BASE_IMAGE" >/dev/null 2>&1
    "${BUILDAH[@]}" rmi --prune >/dev/null 2>&1
    # vfs keeps whole copies of every layer: nothing of it is worth keeping.
    rm -rf "$WORK/storage" "$WORK/run"
  else
    echo "kept: ${BUILDAH[*]} images; ${PODMAN[*]} run --rm -it --entrypoint bash $IMAGE"
  fi
  [ -n "$TMP" ] && rm -rf "$TMP"
  [ "$CLEAN" = 1 ] && rm -rf "$WORK"
  exit $rc
}

need
mkdir -p "$WORK/cache"
TMP=$(mktemp -d "$WORK/tmp.XXXXXX")
chmod 755 "$TMP"
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. the stand-in base image ---------------------------------------------
step "stand-in for $BASE_IMAGE (debootstrap bookworm minbase + this machine's node $(node --version))"
TARBALL="$WORK/cache/bookworm-minbase.tar"
if [ ! -s "$TARBALL" ]; then
  info "debootstrap --variant=minbase bookworm (cached in $TARBALL for the next run)"
  debootstrap --variant=minbase bookworm "$TMP/debootstrap" http://deb.debian.org/debian >"$TMP/debootstrap.log" 2>&1 \
    || { tail -20 "$TMP/debootstrap.log"; fail "debootstrap bookworm"; exit 1; }
  tar -C "$TMP/debootstrap" -cf "$TARBALL.part" . && mv "$TARBALL.part" "$TARBALL"
  rm -rf "$TMP/debootstrap"
fi
BASE_ROOT="$TMP/base"
mkdir -p "$BASE_ROOT"
tar -C "$BASE_ROOT" -xf "$TARBALL"
# What Debian's slim images leave out (debuerreotype --slimify), and apt's caches.
rm -rf "$BASE_ROOT"/usr/share/doc/* "$BASE_ROOT"/usr/share/man/* "$BASE_ROOT"/usr/share/info/* \
  "$BASE_ROOT"/usr/share/locale/* "$BASE_ROOT"/usr/share/groff/* "$BASE_ROOT"/usr/share/lintian/* \
  "$BASE_ROOT"/var/lib/apt/lists/* "$BASE_ROOT"/var/cache/apt/*.bin "$BASE_ROOT"/var/cache/apt/archives/*.deb \
  "$BASE_ROOT"/var/log/*.log
# As the official image: node in /usr/local/bin, npm in /usr/local/lib/node_modules, user node 1000:1000.
cp /usr/bin/node "$BASE_ROOT/usr/local/bin/node"
mkdir -p "$BASE_ROOT/usr/local/lib/node_modules"
cp -a "$(readlink -f /usr/bin/npm | sed 's#/bin/npm-cli.js$##')" "$BASE_ROOT/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$BASE_ROOT/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$BASE_ROOT/usr/local/bin/npx"
chroot "$BASE_ROOT" sh -c 'groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node'
NODE_V=$(chroot "$BASE_ROOT" /usr/local/bin/node --version)
NPM_V=$(chroot "$BASE_ROOT" /usr/local/bin/node /usr/local/bin/npm --version 2>/dev/null)
tar -C "$BASE_ROOT" -cf "$TMP/base.tar" .
rm -rf "$BASE_ROOT"
"${BUILDAH[@]}" rmi -f "$BASE_IMAGE" >/dev/null 2>&1 || true
ctr=$("${BUILDAH[@]}" from scratch)
"${BUILDAH[@]}" add "$ctr" "$TMP/base.tar" / >/dev/null
"${BUILDAH[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env NODE_VERSION="${NODE_V#v}" --cmd node \
  --label org.opencontainers.image.description="stand-in for node:20-bookworm-slim built by scripts/verify-packaging.sh" "$ctr"
"${BUILDAH[@]}" commit --quiet --format docker --rm "$ctr" "$BASE_IMAGE" >/dev/null
rm -f "$TMP/base.tar"
BASE_SIZE=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$BASE_IMAGE")
pass "stand-in $BASE_IMAGE: node $NODE_V, npm $NPM_V, user node 1000:1000, $((BASE_SIZE / 1000000)) MB"

# --- 2. build the Dockerfile -------------------------------------------------
step "buildah bud (the repository's Dockerfile)"
BUILD_ARGS=(--format docker --isolation chroot --pull=never --network host -t "$IMAGE" -f "$ROOT_DIR/Dockerfile")
# A machine behind a TLS-intercepting proxy (NODE_EXTRA_CA_CERTS, as this VM's
# egress) gives the build stage's npm its CA bundle through mounts, not layers:
# /usr/local/etc/npmrc is npm's global configuration for node in /usr/local.
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -s "$NODE_EXTRA_CA_CERTS" ]; then
  printf 'cafile=/usr/local/etc/build-ca.crt\n' >"$TMP/npmrc"
  BUILD_ARGS+=(--volume "$NODE_EXTRA_CA_CERTS:/usr/local/etc/build-ca.crt:ro" --volume "$TMP/npmrc:/usr/local/etc/npmrc:ro")
  info "npm in the build stage trusts $NODE_EXTRA_CA_CERTS (NODE_EXTRA_CA_CERTS here), mounted for the build only"
fi
build_started=$(date +%s)
if "${BUILDAH[@]}" bud "${BUILD_ARGS[@]}" "$ROOT_DIR" >"$TMP/build.log" 2>&1; then
  pass "image built in $(($(date +%s) - build_started)) s"
else
  tail -30 "$TMP/build.log"
  fail "buildah bud failed (log above)"
  exit 1
fi
if grep -qi 'HEALTHCHECK is not supported' "$TMP/build.log"; then fail "the HEALTHCHECK was dropped by the build"; fi

SIZE=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")
USER_CFG=$("${PODMAN[@]}" image inspect --format '{{.Config.User}}' "$IMAGE")
HEALTH_CFG=$("${PODMAN[@]}" image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE")
[ "$USER_CFG" = node ] && pass "image user is node" || fail "image user is '$USER_CFG', not node"
case "$HEALTH_CFG" in *BRANCHLINE_HEALTH_URL*) pass "image keeps its HEALTHCHECK" ;; *) fail "image has no HEALTHCHECK: $HEALTH_CFG" ;; esac
info "image size $((SIZE / 1000000)) MB (the base $((BASE_SIZE / 1000000)) MB of it); $(grep -o 'node_modules: kept [0-9]* packages for [^:]*' "$TMP/build.log" || echo 'node_modules not pruned'); in MB:"
"${PODMAN[@]}" run --rm --network none "${LIMITS[@]}" --entrypoint sh "$IMAGE" -c \
  'cd /app && du -s --apparent-size --block-size=1M node_modules dist bin mappings schemas package.json | sed "s/^/  /" && du -s --apparent-size --block-size=1M /usr/local/bin/node /usr/local/lib/node_modules/npm | sed "s/^/  (base) /"' \
  2> >(grep -v 'level=error' >&2) | sed 's/^/      /' || fail "could not look inside the image"

# --- 3. run it ---------------------------------------------------------------
step "podman run against an embedded PostgreSQL HQ and store S001 (scripts/packaging-world.ts)"
# Its server's folder is under $TMP too (TMPDIR), whatever happens to the world process.
mkdir -p "$TMP/pg" && chmod 755 "$TMP/pg"
mkfifo "$TMP/world.ctl"
(cd "$ROOT_DIR" && TMPDIR="$TMP/pg" exec node --import tsx scripts/packaging-world.ts start "$TMP/world" <"$TMP/world.ctl") >"$TMP/world.log" 2>&1 &
WORLD_PID=$!
exec 3>"$TMP/world.ctl"
for _ in $(seq 1 120); do
  grep -q '^ready' "$TMP/world.log" 2>/dev/null && break
  kill -0 "$WORLD_PID" 2>/dev/null || break
  sleep 1
done
grep -q '^ready' "$TMP/world.log" || { cat "$TMP/world.log"; fail "the PostgreSQL world did not start"; exit 1; }
HTTP_PORT=$(sed -n 's/^ready http_port=//p' "$TMP/world.log")
info "HQ and S001 on one embedded server; the agent's HTTP port will be 127.0.0.1:$HTTP_PORT"

podman_run() { # podman run's arguments; podman's complaints about the missing systemd left out
  "${PODMAN[@]}" run --network host "${LIMITS[@]}" "$@" 2> >(grep -v 'level=error' >&2)
}
run_agent() { # name, config folder
  podman_run -d --name "$1" -v "$2:/etc/branchline:ro" --env-file "$2/branchline.env" \
    -e BRANCHLINE_HEALTH_URL="http://127.0.0.1:$HTTP_PORT/health" "$IMAGE" >/dev/null
}

if podman_run --rm -v "$TMP/world/etc-no-http:/etc/branchline:ro" --env-file "$TMP/world/etc-no-http/branchline.env" \
  "$IMAGE" install --config /etc/branchline/branchline.yml >"$TMP/install.log" 2>&1; then
  pass "branchline install from the image: $(grep -c 'applied migration' "$TMP/install.log") migrations at HQ (knex from the image's node_modules), $(grep -c 'created replication slot' "$TMP/install.log") slot at S001"
else
  cat "$TMP/install.log"
  fail "branchline install from the image"
  exit 1
fi
# The container's main process as the host sees it (rootful podman, no user namespace).
check_uid() {
  local pid uids
  pid=$("${PODMAN[@]}" inspect --format '{{.State.Pid}}' "$1" || echo 0)
  uids=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$pid/status" 2>/dev/null || true)
  if [ "$uids" = "1000 1000 1000 1000" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'dist/bundle/main.js run'; then
    pass "$1: the agent (pid $pid on the host) runs as uid 1000 (real, effective, saved, fs), not root"
  else
    fail "$1: pid $pid has uids '$uids', command '$(tr '\0' ' ' <"/proc/$pid/cmdline")'"
  fi
}
replicate() { # what runs the agent, the command that prints its last log lines
  local out
  if out=$(cd "$ROOT_DIR" && node --import tsx scripts/packaging-world.ts replicate "$TMP/world" 60 2>&1); then
    pass "$1: $out"
  else
    fail "$1: no replication: $out"
    "${@:2}" 2>&1 | tail -5 | sed 's/^/        /' || true
  fi
}
sigterm() {
  local started rc
  started=$(date +%s%N)
  "${PODMAN[@]}" kill --signal TERM "$1" >/dev/null
  rc=$(timeout 40 "${PODMAN[@]}" wait "$1" || echo timeout)
  local ms=$((($(date +%s%N) - started) / 1000000))
  if [ "$rc" = 0 ] && "${PODMAN[@]}" logs "$1" 2>&1 | tail -1 | grep -q '"message":"agent stopped"'; then
    pass "$1: SIGTERM -> 'agent stopped', exit 0 in $ms ms"
  else
    fail "$1: SIGTERM -> exit '$rc' after $ms ms, last log line: $("${PODMAN[@]}" logs "$1" 2>&1 | tail -1)"
  fi
}
health() { # container: exit 0 when healthy (podman 4.3 prints nothing then), 1 and "unhealthy" when not
  "${PODMAN[@]}" healthcheck run "$1" 2> >(grep -v 'level=error' >&2)
}

run_started=$(date +%s%N)
run_agent "$CTR_HTTP" "$TMP/world/etc-http"
started=$(date +%s%N)
info "podman run took $(((started - run_started) / 1000000)) ms (vfs copies the image for each container)"
healthy=
for _ in $(seq 1 90); do
  if out=$(health "$CTR_HTTP"); then
    healthy=$((($(date +%s%N) - started) / 1000000))
    break
  fi
  [ "$("${PODMAN[@]}" inspect --format '{{.State.Running}}' "$CTR_HTTP")" = true ] || break
  sleep 1
done
if [ -n "$healthy" ]; then
  pass "$CTR_HTTP: podman healthcheck run -> healthy, $healthy ms after the container started"
else
  fail "$CTR_HTTP: never healthy (last: ${out:-})"
  "${PODMAN[@]}" logs --tail 20 "$CTR_HTTP" 2>&1 | sed 's/^/        /' || true
fi
check_uid "$CTR_HTTP"
replicate "$CTR_HTTP" "${PODMAN[@]}" logs "$CTR_HTTP"
status=$("${PODMAN[@]}" inspect --format '{{.State.Health.Status}}' "$CTR_HTTP")
[ "$status" = healthy ] && pass "$CTR_HTTP: State.Health.Status $status" || fail "$CTR_HTTP: State.Health.Status '$status'"
sigterm "$CTR_HTTP"
if "${PODMAN[@]}" logs "$CTR_HTTP" 2>&1 | grep -q '"level":"error"'; then
  fail "$CTR_HTTP: error lines in the agent's log"
  "${PODMAN[@]}" logs "$CTR_HTTP" 2>&1 | grep '"level":"error"' | head -5 | sed 's/^/        /' || true
else
  pass "$CTR_HTTP: no error line in the agent's log ($("${PODMAN[@]}" logs "$CTR_HTTP" 2>&1 | wc -l) lines)"
fi

step "the same image without http: in the configuration"
run_agent "$CTR_NO_HTTP" "$TMP/world/etc-no-http"
started=$(date +%s)
# The agent resumes S001 from HQ's position: a new sale proves it runs.
replicate "$CTR_NO_HTTP" "${PODMAN[@]}" logs "$CTR_NO_HTTP"
out=$(health "$CTR_NO_HTTP") && hrc=0 || hrc=$?
status=$("${PODMAN[@]}" inspect --format '{{.State.Health.Status}}' "$CTR_NO_HTTP")
if [ "$hrc" != 0 ] && [ "$out" = unhealthy ]; then
  pass "$CTR_NO_HTTP: podman healthcheck run -> unhealthy (exit $hrc) while the agent runs; in the start period the status stays '$status'"
else
  fail "$CTR_NO_HTTP: podman healthcheck run -> '$out' (exit $hrc), expected unhealthy"
fi
# After the image's 60 s start period, its 3 retries fail and the container is unhealthy.
sleep $((started + 61 - $(date +%s) > 0 ? started + 61 - $(date +%s) : 0))
for _ in 1 2 3; do health "$CTR_NO_HTTP" >/dev/null || true; done
status=$("${PODMAN[@]}" inspect --format '{{.State.Health.Status}} {{.State.Health.FailingStreak}} {{.State.Running}}' "$CTR_NO_HTTP")
read -r hstatus streak running <<<"$status"
if [ "$hstatus" = unhealthy ] && [ "$running" = true ]; then
  pass "$CTR_NO_HTTP: after the start period and 3 failed checks: unhealthy (failing streak $streak), still running: nothing restarts it"
else
  fail "$CTR_NO_HTTP: after the start period and 3 checks: status, failing streak, running = '$status'"
fi
sigterm "$CTR_NO_HTTP"
"${PODMAN[@]}" rm -f "$CTR_HTTP" "$CTR_NO_HTTP" >/dev/null 2>&1

# --- 4. the systemd unit ---------------------------------------------------
step "systemd unit, read by systemd-analyze (systemd $(systemd-analyze --version | awk 'NR==1 {print $2}'))"
SD="$TMP/systemd-root"
mkdir -p "$SD/etc/systemd/system" "$SD/usr/lib/systemd" "$SD/usr/bin" "$SD/opt/branchline" "$SD/etc/branchline" \
  "$SD/var/lib" "$SD/var/cache"
# The units the unit refers to (targets), the unit, node, and the install of the unit's comments:
# the image's /app as /opt/branchline (with docs/), the configuration and the secrets file.
cp -a /usr/lib/systemd/system "$SD/usr/lib/systemd/"
cp "$ROOT_DIR/ops/systemd/branchline.service" "$SD/etc/systemd/system/"
cp /usr/bin/node "$SD/usr/bin/node"
ctr=$("${BUILDAH[@]}" from --pull=never "$IMAGE")
cp -a "$("${BUILDAH[@]}" mount "$ctr")/app/." "$SD/opt/branchline/"
"${BUILDAH[@]}" umount "$ctr" >/dev/null
"${BUILDAH[@]}" rm "$ctr" >/dev/null
cp -a "$ROOT_DIR/docs" "$SD/opt/branchline/docs"
cp "$TMP/world/etc-no-http/branchline.yml" "$SD/etc/branchline/branchline.yml"
install -m 0600 /dev/null "$SD/etc/branchline/branchline.env"
echo 'branchline:x:999:999:branchline:/var/lib/branchline:/usr/sbin/nologin' >>"$SD/etc/passwd"
echo 'branchline:x:999:' >>"$SD/etc/group"
for p in /usr/bin/node /opt/branchline/dist/bundle/main.js /etc/branchline/branchline.yml /etc/branchline/branchline.env /opt/branchline/docs/deployment.md; do
  [ -e "$SD$p" ] || fail "throwaway root lacks $p"
done
if out=$(systemd-analyze verify --root="$SD" branchline.service 2>&1) && [ -z "$out" ]; then
  pass "systemd-analyze verify --root=<throwaway root> branchline.service: no message, exit 0"
else
  fail "systemd-analyze verify: $out"
fi
# The check of the check: the same root without node must fail.
mv "$SD/usr/bin/node" "$SD/usr/bin/node.away"
if out=$(systemd-analyze verify --root="$SD" branchline.service 2>&1) || [ -n "$out" ]; then
  case "$out" in *"/usr/bin/node is not executable"*) pass "verify reads the throwaway root: without its /usr/bin/node it says '$(echo "$out" | tail -1)'" ;;
    *) fail "verify without node in the root: '$out'" ;; esac
else
  fail "verify passed with no /usr/bin/node in the root: it does not look there"
fi
mv "$SD/usr/bin/node.away" "$SD/usr/bin/node"
if out=$(systemd-analyze security --offline=yes --root="$SD" branchline.service 2>&1); then
  score=$(echo "$out" | sed -n 's/.*Overall exposure level for branchline.service: \([0-9.]* [A-Z]*\).*/\1/p')
  pass "systemd-analyze security --offline=yes: exposure $score"
  echo "$out" | grep '✗' | sed 's/  */ /g; s/^/        /'
else
  fail "systemd-analyze security: $out"
fi

# --- 5. the unit under systemd as PID 1 ------------------------------------
step "systemd unit, started by systemd as PID 1 (systemd-nspawn --boot of bookworm with systemd)"
# A Debian 12 with systemd, booted in a container sharing the host's network:
# the unit, node, /opt/branchline (the image's /app), the branchline user, the
# configuration with http: and the secrets file, installed as the unit's
# comments say, and enabled.
NS="$TMP/nspawn-root"
mkdir -p "$NS"
tar -C "$NS" -xf "$TARBALL"
cp /etc/resolv.conf "$NS/etc/resolv.conf"
if ! chroot "$NS" sh -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends systemd systemd-sysv dbus' >"$TMP/nspawn-apt.log" 2>&1; then
  tail -5 "$TMP/nspawn-apt.log"
  fail "apt-get install systemd in the nspawn root"
  exit 1
fi
: >"$NS/etc/machine-id"
cp /usr/bin/node "$NS/usr/bin/node"
cp -a "$SD/opt/branchline" "$NS/opt/branchline"
chroot "$NS" useradd --system --home-dir /var/lib/branchline --shell /usr/sbin/nologin branchline
BL_UID=$(chroot "$NS" id -u branchline)
mkdir -p "$NS/etc/branchline"
sed 's#/app/mappings#/opt/branchline/mappings#' "$TMP/world/etc-http/branchline.yml" >"$NS/etc/branchline/branchline.yml"
chmod 644 "$NS/etc/branchline/branchline.yml"
install -m 0600 "$TMP/world/etc-http/branchline.env" "$NS/etc/branchline/branchline.env"
cp "$ROOT_DIR/ops/systemd/branchline.service" "$NS/etc/systemd/system/"
ln -s /etc/systemd/system/branchline.service "$NS/etc/systemd/system/multi-user.target.wants/branchline.service"
# No machined and no systemd on the host: not registered, no scope of its own.
systemd-nspawn --register=no --keep-unit --quiet --boot --console=pipe -D "$NS" >"$TMP/nspawn.log" 2>&1 </dev/null &
NSPAWN_PID=$!
IN=()
for _ in $(seq 1 60); do
  leader=$(pgrep -P "$NSPAWN_PID" | head -1 || true)
  if [ -n "$leader" ]; then
    IN=(nsenter -t "$leader" -a)
    state=$("${IN[@]}" systemctl is-system-running 2>/dev/null || true)
    case "$state" in running | degraded) break ;; esac
  fi
  sleep 1
done
unit() { "${IN[@]}" systemctl show -p "$2" --value "$1"; }
# GET /health of the agent from the host (shared network); waits up to $1 seconds for an answer with status ok.
agent_health() {
  local body
  for _ in $(seq 1 "$1"); do
    body=$(node -e "fetch('http://127.0.0.1:$HTTP_PORT/health').then(r=>r.text()).then(t=>{console.log(t);process.exit(0)},()=>process.exit(1))" 2>/dev/null) \
      && [[ "$body" == *'"status":"ok"'* ]] && { echo "$body"; return 0; }
    sleep 1
  done
  return 1
}
if [ "${state:-}" = running ] || [ "${state:-}" = degraded ]; then
  pass "booted: systemd $("${IN[@]}" systemctl --version | awk 'NR==1 {print $2, $3}') as PID 1, system $state"
  for _ in $(seq 1 20); do [ "$(unit branchline ActiveState)" = active ] && [ "$(unit branchline NRestarts)" = 0 ] && sleep 3 && break; sleep 1; done
  main=$(unit branchline MainPID || echo 0)
  if [ "$(unit branchline ActiveState)" = active ] && [ "$(unit branchline NRestarts)" = 0 ] && [ "$main" != 0 ]; then
    creds=$("${IN[@]}" awk '/^(Uid|CapEff|NoNewPrivs|Seccomp):/ {printf "%s %s ", $1, $2}' "/proc/$main/status" || true)
    if [ "$creds" = "Uid: $BL_UID CapEff: 0000000000000000 NoNewPrivs: 1 Seccomp: 2 " ]; then
      pass "branchline.service active, running as branchline (uid $BL_UID), no capabilities, no_new_privs, seccomp filter on"
    else
      fail "branchline.service runs with: $creds"
    fi
  else
    fail "branchline.service is $(unit branchline ActiveState)/$(unit branchline SubState), restarts $(unit branchline NRestarts), main process $(unit branchline ExecMainCode)/$(unit branchline ExecMainStatus)"
    "${IN[@]}" journalctl -u branchline --no-pager -n 5 2>&1 | sed 's/^/        /' || true
  fi
  replicate "branchline.service" "${IN[@]}" journalctl -u branchline --no-pager
  if health=$(agent_health 10); then
    pass "branchline.service: GET /health -> $health"
  else
    fail "branchline.service: GET /health: no answer with status ok in 10 s"
  fi
  # Restart=on-failure after a kill; RestartSec=10s.
  [ "$main" != 0 ] && "${IN[@]}" sh -c "kill -KILL $main"
  for _ in $(seq 1 25); do [ "$(unit branchline NRestarts)" = 1 ] && [ "$(unit branchline ActiveState)" = active ] && break; sleep 1; done
  # Up again: /health answers (stopping it before node set its SIGTERM handler would test nothing).
  if [ "$(unit branchline NRestarts)" = 1 ] && [ "$(unit branchline ActiveState)" = active ] && agent_health 20 >/dev/null; then
    pass "branchline.service: SIGKILL -> restarted once (Restart=on-failure, RestartSec=10s), /health answers again"
  else
    fail "branchline.service after SIGKILL: $(unit branchline ActiveState), restarts $(unit branchline NRestarts)"
  fi
  "${IN[@]}" systemctl stop branchline
  if [ "$(unit branchline Result)" = success ] && [ "$(unit branchline ExecMainStatus)" = 0 ] \
    && "${IN[@]}" journalctl -u branchline --no-pager -o cat | grep -q '"message":"agent stopped"'; then
    pass "systemctl stop: SIGTERM -> 'agent stopped', exit 0, Result=success"
  else
    fail "systemctl stop: Result=$(unit branchline Result), exit $(unit branchline ExecMainStatus)"
  fi
  # A configuration error (exit 2) is not restarted: RestartPreventExitStatus=2.
  echo 'bogus_setting: 1' >>"$NS/etc/branchline/branchline.yml"
  "${IN[@]}" systemctl reset-failed branchline 2>/dev/null || true
  "${IN[@]}" systemctl start branchline
  sleep 13
  if [ "$(unit branchline ExecMainStatus)" = 2 ] && [ "$(unit branchline ActiveState)" = failed ] && [ "$(unit branchline NRestarts)" = 0 ]; then
    pass "a configuration error: exit 2, failed, not restarted after RestartSec (RestartPreventExitStatus=2): $("${IN[@]}" journalctl -u branchline --no-pager -o cat | grep -o 'BL-C003[^.]*' | head -1)"
  else
    fail "a configuration error: exit $(unit branchline ExecMainStatus), $(unit branchline ActiveState), restarts $(unit branchline NRestarts)"
  fi
  "${IN[@]}" systemctl poweroff 2>/dev/null || true
else
  fail "the nspawn container did not boot (state '${state:-}'): $(tail -5 "$TMP/nspawn.log")"
fi
for _ in $(seq 1 30); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 1; done
kill -0 "$NSPAWN_PID" 2>/dev/null && kill -KILL "$NSPAWN_PID"
wait "$NSPAWN_PID" 2>/dev/null || true
NSPAWN_PID=

stop_world
grep -q '^stopped' "$TMP/world.log" && pass "PostgreSQL world stopped and removed" || fail "PostgreSQL world: $(tail -3 "$TMP/world.log")"

# ---------------------------------------------------------------------------
echo
echo "== summary (image $((SIZE / 1000000)) MB; $([ "$FAILED" = 0 ] && echo 'every check passed' || echo 'SOME CHECKS FAILED'))"
printf '%s\n' "${RESULTS[@]}"
exit "$FAILED"
