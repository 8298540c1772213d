"""One store of scripts/reencrypt-kill.sh (read that file's header first).

    python3 scripts/reencrypt_kill.py NAME LOCATION

Settings come from the environment the shell script exports (REKILL_*, HYOK_CONFIG, HOME).
Exit status 1 on any violation.
"""

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

H = os.environ["REKILL_BIN"]
WORK = os.environ["REKILL_DIR"]
OLD, NEW = os.environ["REKILL_OLD"], os.environ["REKILL_NEW"]
SMALL = int(os.environ["REKILL_SMALL"])
LARGE = int(os.environ["REKILL_LARGE"])
LARGE_MIB = int(os.environ["REKILL_LARGE_MIB"])
KILLS = int(os.environ["REKILL_KILLS"])
JOBS = os.environ.get("REKILL_JOBS", "8")
SEED = int(os.environ.get("REKILL_SEED", str(int(time.time()))))
MIB = 1 << 20
RACER_POOL = 40

NAME, LOC = sys.argv[1], sys.argv[2]
rng = random.Random(SEED)
here = os.path.join(WORK, NAME.replace("/", "_"))
os.makedirs(here, exist_ok=True)
RUN_TMP = os.path.join(here, "tmp")  # TMPDIR of every reencrypt run: must stay empty
os.makedirs(RUN_TMP, exist_ok=True)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {NAME}: {msg}", flush=True)


class State:
    """Expected plaintext hashes, the writer's candidates, and the violations found."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latest = {}  # name -> sha256 of the content it must have now
        self.known = {}  # name -> every sha256 it may have had (checker: any is fine)
        self.first_mib = {}  # large name -> sha256 of its first MiB
        self.raced = set()  # names the writer overwrote at least once
        self.violations = []
        self.checked = 0  # object decryptions compared
        self.live_checks = 0
        self.live_retries = 0

    def violate(self, msg):
        with self.lock:
            self.violations.append(msg)
        log("VIOLATION: " + msg)


S = State()


def hyok(args, **kw):
    return subprocess.run([H] + args, capture_output=True, **kw)


def sha(data):
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------
# 1. Data under the OLD key; keep hashes only.
def write_data():
    src = os.path.join(here, "src")
    os.makedirs(os.path.join(src, "small"))
    os.makedirs(os.path.join(src, "large"))
    for i in range(SMALL):
        data = os.urandom(1024 + rng.randrange(3072))
        n = f"small/s{i:06d}"
        with open(os.path.join(src, n), "wb") as f:
            f.write(data)
        S.latest[n] = sha(data)
    for i in range(LARGE):
        n = f"large/l{i}"
        h, h1 = hashlib.sha256(), None
        with open(os.path.join(src, n), "wb") as f:
            for j in range(LARGE_MIB):
                block = os.urandom(MIB)
                h.update(block)
                if j == 0:
                    h1 = sha(block)
                f.write(block)
        S.latest[n] = h.hexdigest()
        S.first_mib[n] = h1
    for n, v in S.latest.items():
        S.known[n] = {v}
    t0 = time.monotonic()
    r = hyok(["cp", "-r", "-q", "-j", "8", src + "/", LOC, "--keyring", "old"])
    if r.returncode != 0:
        sys.exit(f"upload failed: {r.stderr.decode(errors='replace')}")
    log(f"wrote {SMALL} small + {LARGE} x {LARGE_MIB} MiB under the old key in {time.monotonic() - t0:.0f} s")
    shutil.rmtree(src)


# ---------------------------------------------------------------------------------------
# Checks.
def stream_hash(args, limit=None):
    """Run hyok writing plaintext to stdout; return (sha256 or None on failure, stderr)."""
    p = subprocess.Popen([H] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    h = hashlib.sha256()
    while True:
        b = p.stdout.read(4 * MIB)
        if not b:
            break
        h.update(b)
    err = p.stderr.read().decode(errors="replace")
    code = p.wait()
    return (h.hexdigest() if code == 0 else None), err


def check_one_live(name):
    """Decrypt one object (a large one: its first MiB) with old-or-new keys."""
    url = LOC + name
    large = name.startswith("large/")
    args = ["cp", "-q", url, "-", "--keyring", "both"]
    if large:
        args += ["--range", f"0-{MIB - 1}"]
    err = ""
    for attempt in range(3):
        with S.lock:
            ok_set = {S.first_mib[name]} if large else set(S.known[name])
        got, err = stream_hash(args)
        if got is not None and got in ok_set:
            with S.lock:
                S.live_checks += 1
            return
        if got is not None:
            S.violate(f"live: {name} decrypted to content never written")
            return
        with S.lock:
            S.live_retries += 1
        time.sleep(0.05)
    S.violate(f"live: {name} decrypts with neither key ({err.strip()[:300]})")


def checker(stop):
    names = sorted(S.latest)
    larges = [n for n in names if n.startswith("large/")]
    smalls = [n for n in names if n.startswith("small/")]
    while not stop.is_set():
        if larges and rng.random() < 0.2:
            check_one_live(rng.choice(larges))
        else:
            check_one_live(rng.choice(smalls))


def racer(stop, writes):
    """Overwrite random names of a small pool with new content under the OLD key."""
    pool = [f"small/s{i:06d}" for i in range(0, SMALL, max(1, SMALL // RACER_POOL))][:RACER_POOL]
    r = random.Random(rng.random())
    f = os.path.join(here, "racer.bin")
    while not stop.wait(r.uniform(0.1, 1.0)):
        n = r.choice(pool)
        size = 12 * MIB + r.randrange(MIB) if writes[0] % 4 == 3 else 1 + r.randrange(4096)
        data = os.urandom(size)
        h = sha(data)
        with open(f, "wb") as fh:
            fh.write(data)
        with S.lock:
            S.known[n].add(h)  # before the write: the checker may see it at once
        res = hyok(["cp", "-q", "-f", f, LOC + n, "--keyring", "old"])
        if res.returncode != 0:
            S.violate(f"writer: cp to {n} failed: {res.stderr.decode(errors='replace').strip()[:300]}")
            continue
        with S.lock:
            S.latest[n] = h
            S.raced.add(n)
        writes[0] += 1


def listed_names():
    r = hyok(["ls", LOC])
    if r.returncode != 0:
        S.violate(f"ls failed: {r.stderr.decode(errors='replace').strip()[:300]}")
        return {}, r
    out = {}
    for line in r.stdout.decode().splitlines():
        parts = line.split()
        if len(parts) >= 4:
            out[parts[-1]] = parts[2]
    return out, r


def staging_scan():
    """Local store only: hidden staging files, and that every file on disk is a message."""
    staged = staged_bytes = 0
    if not LOC.startswith("file://"):
        # S3: multipart uploads left open, as this run's upload journal lists them (a killed
        # run's; the next run aborts them). With REKILL_S3_DATA, the bytes of all unfinished
        # uploads' parts in the s3s-fs data folder (every client's, not only this run's).
        journal = os.path.join(os.environ.get("XDG_STATE_HOME", ""), "hyok", "uploads")
        staged = len(os.listdir(journal)) if os.path.isdir(journal) else 0
        data = os.environ.get("REKILL_S3_DATA")
        if data and os.path.isdir(data):
            for fn in os.listdir(data):
                if fn.startswith(".upload_id-"):
                    try:
                        staged_bytes += os.path.getsize(os.path.join(data, fn))
                    except FileNotFoundError:
                        pass
        return staged, staged_bytes
    root = LOC[len("file://"):]
    for d, _, files in os.walk(root):
        for fn in files:
            p = os.path.join(d, fn)
            if "#" in fn:
                staged += 1
                staged_bytes += os.path.getsize(p)
            with open(p, "rb") as fh:
                head = fh.read(3)
            # Format 2 messages start with version 0x02 and suite 0x0478 / 0x0578.
            if len(head) == 3 and not (head[0] == 2 and head[1] in (4, 5) and head[2] == 0x78):
                S.violate(f"disk: {p} does not start like an encrypted message (plaintext on disk?)")
    return staged, staged_bytes


def full_check(label, keyring="both", expect_keys=None, exclude_raced=False):
    """Every object: listed, decrypts to its latest content with `keyring`."""
    t0 = time.monotonic()
    listed, _ = listed_names()
    with S.lock:
        want = dict(S.latest)
        raced = set(S.raced)
    names = set(want)
    if set(listed) != names:
        extra = sorted(set(listed) - names)[:5]
        missing = sorted(names - set(listed))[:5]
        S.violate(f"{label}: ls shows extra {extra} / misses {missing}")
    on_new = sum(1 for k in listed.values() if "rekill/new" in k)
    on_old = sum(1 for k in listed.values() if "rekill/old" in k)
    if expect_keys:
        for n, k in listed.items():
            if exclude_raced and n in raced:
                continue
            if k != expect_keys:
                S.violate(f"{label}: {n} is wrapped by {k}, not {expect_keys}")
                break
    # The large objects stream through sha256 (no disk) while the small ones download.
    large_got = {}

    def one_large(n):
        large_got[n] = stream_hash(["cp", "-q", LOC + n, "-", "--keyring", keyring])

    larges = [threading.Thread(target=one_large, args=(n,)) for n in want if n.startswith("large/")]
    for t in larges:
        t.start()
    dl = os.path.join(here, "dl")
    shutil.rmtree(dl, ignore_errors=True)
    hyok(["cp", "-r", "-q", "-j", "8", LOC + "small/", dl + "/", "--keyring", keyring])
    for t in larges:
        t.join()
    bad = 0
    for n, h in want.items():
        if n.startswith("large/"):
            continue
        if exclude_raced and n in raced:
            continue
        p = os.path.join(dl, n[len("small/"):])
        try:
            with open(p, "rb") as fh:
                got = sha(fh.read())
        except FileNotFoundError:
            got = None
        S.checked += 1
        if got != h:
            bad += 1
            if bad <= 5:
                if got is None:
                    S.violate(f"{label}: {n} does not decrypt with keyring {keyring}")
                elif n in raced:
                    S.violate(f"{label}: {n} lost the writer's content (clobbered)")
                else:
                    S.violate(f"{label}: {n} decrypts to the wrong content")
    shutil.rmtree(dl, ignore_errors=True)
    for n, h in want.items():
        if not n.startswith("large/"):
            continue
        got, err = large_got[n]
        S.checked += 1
        if got != h:
            S.violate(f"{label}: {n} {'wrong content' if got else 'does not decrypt: ' + err.strip()[:200]}")
    leftovers = os.listdir(RUN_TMP)
    if leftovers:
        S.violate(f"{label}: temporary files left by reencrypt: {leftovers[:5]}")
    staged, staged_bytes = staging_scan()
    log(
        f"{label}: checked {len(want)} objects in {time.monotonic() - t0:.0f} s: "
        f"{on_new} on new, {on_old} on old; "
        + (f"hidden staging files {staged} ({staged_bytes / MIB:.0f} MiB)" if LOC.startswith("file://")
           else f"uploads left open {staged} (server-wide unfinished parts {staged_bytes / MIB:.0f} MiB)")
    )
    return staged, staged_bytes


def none_open_with_old(label):
    """After the last run: no object (the writer's ones too) opens with the old key alone."""
    dl = os.path.join(here, "dl-old")
    shutil.rmtree(dl, ignore_errors=True)
    hyok(["cp", "-r", "-q", "-j", "8", LOC + "small/", dl + "/", "--keyring", "old"])
    opened = os.listdir(dl) if os.path.isdir(dl) else []
    if opened:
        S.violate(f"{label}: {len(opened)} small objects still open with the old key alone, e.g. {opened[:3]}")
    shutil.rmtree(dl, ignore_errors=True)
    for n in S.latest:
        if n.startswith("large/"):
            r = hyok(["cp", "-q", LOC + n, "-", "--keyring", "old", "--range", "0-0"])
            if r.returncode == 0:
                S.violate(f"{label}: {n} still opens with the old key alone")


def clean_staging():
    """Remove hidden staging files (local store) so killed 1 GiB uploads do not fill the disk."""
    if not LOC.startswith("file://"):
        return
    root = LOC[len("file://"):]
    for d, _, files in os.walk(root):
        for fn in files:
            if "#" in fn:
                os.remove(os.path.join(d, fn))


# ---------------------------------------------------------------------------------------
# 2. Kill and re-run.
def reencrypt_args(to):
    # Back to the old key (a reset) opens with both keys: the writer's objects are on the old.
    return [H, "reencrypt", LOC, "--keyring", "old" if to == NEW else "both", "--to-key", to, "-q", "-j", JOBS]


def run_once(to, delay, race=True):
    """Start a run toward `to`, with the checker and (race) the writer; SIGKILL it after
    `delay` s (None: let it finish). Returns (killed, seconds, returncode, stderr)."""
    env = dict(os.environ, TMPDIR=RUN_TMP)
    errf = open(os.path.join(here, "run.err"), "w+b")
    t0 = time.monotonic()
    p = subprocess.Popen(reencrypt_args(to), stdout=subprocess.DEVNULL, stderr=errf, env=env)
    stop = threading.Event()
    writes = [0]
    threads = [threading.Thread(target=checker, args=(stop,))]
    if race:
        threads.append(threading.Thread(target=racer, args=(stop, writes)))
    for t in threads:
        t.start()
    killed = False
    try:
        p.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        p.wait()
        killed = True
    secs = time.monotonic() - t0
    stop.set()
    for t in threads:
        t.join()
    errf.seek(0)
    err = errf.read().decode(errors="replace")
    errf.close()
    return killed, secs, p.returncode, err, writes[0]


def main():
    t_start = time.monotonic()
    log(f"seed {SEED}; {SMALL} small + {LARGE} x {LARGE_MIB} MiB; {KILLS} kills; location {LOC}")
    write_data()
    full_check("initial", keyring="old")
    s3 = not LOC.startswith("file://")
    bound = float(os.environ.get("REKILL_BOUND", "0")) or (1 + SMALL / 1000 + LARGE * LARGE_MIB / 100) * (4 if s3 else 1)
    kills = runs = resets = writes = 0
    max_staged = 0
    delays = []
    while kills < KILLS:
        delay = rng.uniform(0.2, bound)
        killed, secs, code, err, w = run_once(NEW, delay)
        runs += 1
        writes += w
        if killed:
            kills += 1
            delays.append(delay)
            label = f"kill {kills}/{KILLS} after {delay:.1f} s"
        else:
            if code != 0:
                S.violate(f"run {runs} failed: {err.strip()[-500:]}")
            bound = max(0.5, 0.9 * secs)
            label = f"run {runs} finished in {secs:.1f} s before its kill (bound now {bound:.1f} s)"
        staged, staged_bytes = full_check(label)
        max_staged = max(max_staged, staged)
        clean_staging()
        if not killed:
            # Back to the old key so the next kills find work again.
            _, secs, code, err, w = run_once(OLD, None, race=False)
            writes += w
            resets += 1
            if code != 0:
                S.violate(f"reset run failed: {err.strip()[-500:]}")
            full_check(f"reset {resets} ({secs:.1f} s)")
    # 4. A run racing the writer, not killed; then a clean run.
    _, secs, code, err, w = run_once(NEW, None)
    writes += w
    runs += 1
    if code != 0:
        S.violate(f"final racing run failed: {err.strip()[-500:]}")
    log(f"final racing run: {secs:.1f} s; {err.strip().splitlines()[0] if err.strip() else ''}")
    full_check("after the racing run (new key alone, writer's objects excluded)", keyring="new",
               expect_keys="rekill/new", exclude_raced=True)
    full_check("after the racing run (old or new)")
    _, secs, code, err, _ = run_once(NEW, None, race=False)
    runs += 1
    if code != 0:
        S.violate(f"clean run failed: {err.strip()[-500:]}")
    log(f"clean run: {secs:.1f} s; {err.strip().splitlines()[0] if err.strip() else ''}")
    staged, _ = full_check("final (new key alone)", keyring="new", expect_keys="rekill/new")
    if staged and not LOC.startswith("file://"):
        S.violate(f"final: {staged} multipart upload(s) of killed runs still open after complete runs")
    none_open_with_old("final")
    dry = hyok(["reencrypt", LOC, "--keyring", "old", "--to-key", NEW, "--dry-run"])
    if b"would re-encrypt 0 object(s)" not in dry.stderr:
        S.violate(f"final dry run: {dry.stderr.decode(errors='replace').strip()[:300]}")
    r = hyok(["rm", "-r", "-y", LOC])
    if r.returncode != 0:
        log(f"cleanup: rm failed: {r.stderr.decode(errors='replace').strip()[:200]}")
    clean_staging()
    total = time.monotonic() - t_start
    print(
        f"SUMMARY {NAME}: {kills} kills (delays {min(delays):.1f}-{max(delays):.1f} s), {runs} runs, "
        f"{resets} resets, {writes} racing writes to {len(S.raced)} objects, "
        f"{S.checked} full-check decryptions + {S.live_checks} live ones ({S.live_retries} retried reads), "
        f"max {'hidden staging files' if LOC.startswith('file://') else 'uploads left open'} after a kill {max_staged}, {total:.0f} s, "
        f"{len(S.violations)} violations",
        flush=True,
    )
    for v in S.violations[:20]:
        print("  " + v)
    sys.exit(1 if S.violations else 0)


if __name__ == "__main__":
    main()
