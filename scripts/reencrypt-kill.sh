#!/usr/bin/env bash
# Issue 11's kill -9 acceptance at full scale: `hyok reencrypt` killed with SIGKILL at random
# points and re-run each time, on a local folder and (when the s3s-fs service is up) on S3,
# while a checker keeps decrypting objects and a writer races the runs.
#
#   scripts/reencrypt-kill.sh [SMALL (10000)] [LARGE (3)] [LARGE_MIB (1024)] [KILLS (20)]
#
# Per store:
# 1. SMALL objects of 1-4 KiB (under small/) and LARGE objects of LARGE_MIB MiB (under
#    large/) are written with `hyok cp` under the OLD raw AES key; only their SHA-256 is kept.
# 2. `hyok reencrypt LOC --key OLD --to-key NEW` is started and killed with SIGKILL after a
#    random delay (uniform between 0.2 s and a bound that shrinks to 90 % of a run's length
#    whenever a run finishes before its kill), KILLS times. While it runs:
#    - a checker keeps decrypting random small objects whole and the first MiB of random
#      large ones (`--range`) with a keyring holding the old AND the new key; each must give
#      a known plaintext (a read that fails is retried twice: a large object replaced under
#      a ranged read fails that read; three failures in a row are a violation);
#    - a writer overwrites random small objects (a pool of 40 names) with new content under
#      the OLD key, every fourth write 12 MiB (so its re-encryption is a multipart upload).
# 3. After every kill (the writer stopped first), ALL objects are checked: `hyok ls` lists
#    exactly the expected names (no temporary or partial object visible), each decrypts with
#    old-or-new keys to its latest plaintext (the writer's last content for the names it
#    overwrote: anything else means a clobbered write), the temporary directory of the runs
#    holds no file, and on the local store every file (also hidden staging files `NAME#N`
#    that a killed upload leaves) starts like a format-2 message, i.e. no plaintext on disk.
#    A run that finished before its kill is followed by a run back to the OLD key (counted
#    as a reset) so that later kills again find work.
# 4. A last run races the writer without a kill: the writer's objects hold its content,
#    every other object decrypts with the NEW key alone and not with the OLD one. A final
#    clean run then moves the writer's objects too: all on the NEW key, none on the OLD,
#    `--dry-run` finds nothing left.
# A summary per store; exit status 1 on any violation.
#
# Settings (environment): REKILL_STORES ("local s3", default both; s3 needs AWS_ENDPOINT_URL
# and a bucket), REKILL_BUCKET (a bucket of its own, created with the aws cli if missing and
# removed at the end; default: HYOK_TEST_S3_BUCKET under a unique prefix), REKILL_BOUND (first
# bound of the kill delay, seconds; default from the data size), REKILL_JOBS (-j of
# reencrypt, default 8), REKILL_SEED, REKILL_WORK (work directory, default under /tmp),
# REKILL_S3_DATA (the s3s-fs data folder: bytes of every unfinished upload's parts are shown).
# On S3 the uploads a kill leaves open are counted from the upload journal; a complete run
# must abort them (a violation otherwise).
# Needs the release binary (built here unless HYOK_BIN names one) and `source /work/services.env`
# (or `eval "$(scripts/services/s3.sh)"`) for the S3 part.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
if [[ -z "${HYOK_BIN:-}" ]]; then cargo build --release -q -p hyok-cli; fi
export REKILL_BIN="${HYOK_BIN:-$REPO_ROOT/target/release/hyok}"
export REKILL_SMALL="${1:-10000}" REKILL_LARGE="${2:-3}" REKILL_LARGE_MIB="${3:-1024}" REKILL_KILLS="${4:-20}"
work="${REKILL_WORK:-$(mktemp -d)}"
mkdir -p "$work"
export REKILL_DIR="$work"
trap 'rm -rf "$work"' EXIT
export HOME="$work" XDG_STATE_HOME="$work/state" HYOK_BRANCH_STORE="$work/branches"
head -c 32 /dev/urandom >"$work/old.key"; head -c 32 /dev/urandom >"$work/new.key"
chmod 600 "$work"/*.key
export REKILL_OLD="raw-aes:rekill/old?file=$work/old.key" REKILL_NEW="raw-aes:rekill/new?file=$work/new.key"
cat >"$work/hyok.toml" <<TOML
[keyrings.old]
keys = ["$REKILL_OLD"]
[keyrings.new]
keys = ["$REKILL_NEW"]
[keyrings.both]
keys = ["$REKILL_NEW", "$REKILL_OLD"]
TOML
chmod 600 "$work/hyok.toml"
export HYOK_CONFIG="$work/hyok.toml"

locs=()
for s in ${REKILL_STORES:-local s3}; do
  case "$s" in
    local) mkdir -p "$work/store"; locs+=("local=file://$work/store/") ;;
    s3)
      if [[ -z "${AWS_ENDPOINT_URL:-}" ]]; then echo "s3s-fs: skipped (AWS_ENDPOINT_URL not set)"; continue; fi
      if [[ -n "${REKILL_BUCKET:-}" ]]; then
        if command -v aws >/dev/null && ! aws s3api head-bucket --bucket "$REKILL_BUCKET" >/dev/null 2>&1; then
          aws s3api create-bucket --bucket "$REKILL_BUCKET" >/dev/null
          export REKILL_MADE_BUCKET=1
        fi
        locs+=("s3s-fs=s3://$REKILL_BUCKET/rekill-$$/")
      elif [[ -n "${HYOK_TEST_S3_BUCKET:-}" ]]; then
        locs+=("s3s-fs=s3://$HYOK_TEST_S3_BUCKET/rekill-$$/")
      else
        echo "s3s-fs: skipped (no REKILL_BUCKET / HYOK_TEST_S3_BUCKET)"
      fi ;;
    *) echo "unknown store $s (local, s3)" >&2; exit 2 ;;
  esac
done

status=0
for l in "${locs[@]}"; do
  python3 "$REPO_ROOT/scripts/reencrypt_kill.py" "${l%%=*}" "${l#*=}" || status=1
done
if [[ -n "${REKILL_MADE_BUCKET:-}" ]]; then aws s3 rb "s3://$REKILL_BUCKET" --force >/dev/null 2>&1 || true; fi
exit "$status"
