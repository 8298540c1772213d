#!/usr/bin/env python3
"""Turns the measurements of bench/run.sh into the core-bench section of docs/BENCHMARKS.md.

    report.py --dir BENCH_DIR --out docs/BENCHMARKS.md

Reads BENCH_DIR/results.txt ("name wall_s user_s sys_s maxrss_kib" per run),
BENCH_DIR/inproc.txt ("name value unit", from the `bench` example) and BENCH_DIR/meta.txt
("key value"). Replaces the text between the core-bench markers in the output file, or
appends the section (creating the file) when there is none; the rest of the file is kept.
"""

import argparse
import os
import re

BEGIN = "<!-- core-bench:begin -->"
END = "<!-- core-bench:end -->"
MB = 1e6


def read_meta(path):
    meta = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            key, _, value = line.rstrip("\n").partition(" ")
            if key:
                meta[key] = value
    return meta


def read_runs(path):
    runs = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) != 5:
                continue
            name, wall, user, sys_, rss = parts
            runs.setdefault(name, []).append(
                {"wall": float(wall), "cpu": float(user) + float(sys_), "rss": int(rss)}
            )
    best = {}
    for name, rs in runs.items():
        b = dict(min(rs, key=lambda r: r["wall"]))
        b["rss"] = max(r["rss"] for r in rs)
        b["n"] = len(rs)
        best[name] = b
    return best


def read_inproc(path):
    values = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) >= 2:
                values[parts[0]] = float(parts[1])
    return values


def verdict(ok):
    return "**met**" if ok else "**missed**"


def fmt_ratio(x):
    return "%.2f×" % x


def render(meta, best, inproc):
    mib = int(meta["mib"])
    esdk_mib = int(meta["esdk_mib"])
    size = mib * 1024 * 1024
    esdk_size = esdk_mib * 1024 * 1024

    def size_of(name):
        return esdk_size if name.startswith("esdk") else size

    def rate(name):  # MB/s of plaintext
        return size_of(name) / best[name]["wall"] / MB

    openssl = float(meta.get("openssl_gcm", "nan")) / 1e9
    # The floor is the faster plain copy: on the project machine 4 MiB writes into the page
    # cache cost several times what 256 KiB writes do (see hyok-cli's pipe.rs).
    dd4, dd256, ddf = rate("dd"), rate("dd_256k"), rate("dd_fsync")
    dd = max(dd4, dd256)
    enc, dec = rate("hyok_encrypt"), rate("hyok_decrypt")
    encf, decf = rate("hyok_encrypt_fsync"), rate("hyok_decrypt_fsync")
    rss_mib = max(best["hyok_encrypt"]["rss"], best["hyok_decrypt"]["rss"]) / 1024

    g = inproc
    # One core: bytes per CPU-second (what a core does, whatever else runs), and by wall time.
    enc1 = g["lib_encrypt_1t_cpu"] / g["bare_seal_cpu"]
    dec1 = g["lib_decrypt_1t_cpu"] / g["bare_open_cpu"]
    enc1_wall = g["lib_encrypt_1t"] / g["bare_seal"]
    dec1_wall = g["lib_decrypt_1t"] / g["bare_open"]
    enc2 = g["lib_encrypt_2t"] / g["lib_encrypt_1t"]
    dec2 = g["lib_decrypt_2t"] / g["lib_decrypt_1t"]
    bare2 = g["bare_seal_2t"] / g["bare_seal"]

    peers = [
        ("age", "age_encrypt", "age_decrypt", "X25519 recipient, ChaCha20-Poly1305 64 KiB chunks"),
        ("Tink (Python)", "tink_encrypt", "tink_decrypt", "streaming AEAD AES256_GCM_HKDF_1MB"),
        ("Python ESDK, default", "esdk_default_encrypt", "esdk_default_decrypt",
         "suite 0x0578 (committing, ECDSA P-384), 4 KiB frames"),
        ("Python ESDK, fastest", "esdk_fast_encrypt", "esdk_fast_decrypt",
         "suite 0x0478 (committing, unsigned), 64 KiB frames"),
    ]
    margins = []
    for label, e, d, _ in peers:
        margins.append((enc / rate(e), label, "encrypt"))
        margins.append((dec / rate(d), label, "decrypt"))
    worst = min(margins)

    f2f_ok = enc >= 0.85 * dd and dec >= 0.85 * dd
    out = []
    w = out.append
    w(BEGIN)
    w("## Core: streaming encryption (bench/run.sh)")
    w("")
    w("Command: `bench/run.sh` (5 to 10 minutes on 2 cores; it installs what it needs: age, "
      "GNU time and openssl from apt, the Python ESDK and Tink into `.venv`; settings in its "
      "header). It rewrites only this section, between the `core-bench` markers.")
    w("")
    w("Measured %s on %s (%s cores), Linux %s, commit %s, by `bench/run.sh` in %s s. "
      "Load average before / after: %s / %s. The machine is shared with other builds and "
      "tests, so absolute times drift from run to run; the ratios below compare runs made "
      "in the same script, round by round, and are what to read. The file-to-file runs "
      "are the best of %s rounds (the order of the tools rotates from round to round) on one %d MiB file of random bytes (in the "
      "page cache); every run starts after a `sync`, right after a file of the same size "
      "was written and deleted (see the header of `bench/run.sh`: on this virtual machine "
      "writing into long-free memory costs several times more than into just-freed memory)."
      % (meta["date"], meta["cpu"], meta["cores"], meta["kernel"], meta["commit"],
         meta.get("duration_s", "?"), meta["load_before"], meta.get("load_after", "?"),
         meta["reps"], mib))
    busy = max(float(meta["load_before"].split()[0]), float(meta.get("load_after", "0").split()[0]))
    if busy > float(meta["cores"]):
        w("")
        w("**This run was made on a busy machine** (load average %.1f on %s cores, from other "
          "engineers' builds and tests): every tool got only part of the cores, unevenly, and "
          "the 2-thread figures in particular say more about the load than about hyok. Re-run "
          "`bench/run.sh` on an idle machine for figures to rely on." % (busy, meta["cores"]))
    w("")
    w("**Reading the file-to-file rows on this machine.** This is a virtual machine (Linux "
      "6.18, ext4) where the cost of writing into the page cache depends on the size of each "
      "`write` and on how long ago the memory was freed (the host takes back free guest "
      "memory): copying 1 GiB with `dd` took 0.35 s in 256 KiB writes but 1.5 to 2.9 s in "
      "4 MiB writes, nearly all of it system time in the kernel's copy into new page-cache "
      "pages (`copy_folio_from_iter_atomic`), and a run right after another 1 GiB write paid "
      "more again. So hyok writes its output in 256 KiB pieces, `dd` runs with both block "
      "sizes (the faster is the floor), and before every run `bench/run.sh` syncs and then "
      "writes and deletes a scratch file of the input's size, so every tool writes into "
      "just-freed memory; the order of the tools also rotates from round to round. Expect "
      "single file-to-file rows to move by ±30 % between runs all the same.")
    w("")
    w("### Goals of issue 2")
    w("")
    w("| goal | measured | |")
    w("| --- | --- | --- |")
    w("| file to file ≥ 0.85× `dd` | encrypt %s, decrypt %s of the faster plain `dd` (bs=4M or 256K); with `--fsync`, %s and %s of `dd bs=4M conv=fsync` | %s |"
      % (fmt_ratio(enc / dd), fmt_ratio(dec / dd), fmt_ratio(encf / ddf), fmt_ratio(decf / ddf),
         verdict(f2f_ok)))
    w("| in process ≥ 0.85× the bare AES-GCM loop, per core | encrypt %s, decrypt %s per CPU-second (by wall time: %s, %s) | %s |"
      % (fmt_ratio(enc1), fmt_ratio(dec1), fmt_ratio(enc1_wall), fmt_ratio(dec1_wall),
         verdict(enc1 >= 0.85 and dec1 >= 0.85)))
    w("| 2 threads ≥ 1.7× one | encrypt %s, decrypt %s (the bare loop itself on 2 threads: %s) | %s |"
      % (fmt_ratio(enc2), fmt_ratio(dec2), fmt_ratio(bare2), verdict(enc2 >= 1.7 and dec2 >= 1.7)))
    w("| faster than every peer, same file, same run | closest: %s %s; hyok's rate is %s of it | %s |"
      % (worst[1], worst[2], fmt_ratio(worst[0]), verdict(worst[0] > 1.0)))
    w("| 4 KiB messages ≥ 20,000/s each way | encrypt %.0f/s, decrypt %.0f/s | %s |"
      % (g["msg_encrypt"], g["msg_decrypt"],
         verdict(g["msg_encrypt"] >= 20000 and g["msg_decrypt"] >= 20000)))
    w("| peak RSS ≤ 64 MiB on %d MiB | %.1f MiB | %s |" % (mib, rss_mib, verdict(rss_mib <= 64)))
    w("")
    w("### Limits of this machine")
    w("")
    w("| | rate |")
    w("| --- | --- |")
    w("| `openssl speed -evp aes-256-gcm -bytes 65536` (OpenSSL %s, one core) | %.2f GB/s |"
      % (meta.get("openssl", "?"), openssl))
    w("| aws-lc-rs AES-256-GCM bare loop, 64 KiB chunks, one core (seal / open) | %.2f / %.2f GB/s |"
      % (g["bare_seal"], g["bare_open"]))
    w("| the same seal loop on 2 threads | %.2f GB/s |" % g["bare_seal_2t"])
    w("| `dd bs=4M`, file to file | %.0f MB/s |" % dd4)
    w("| `dd bs=256K`, file to file | %.0f MB/s |" % dd256)
    w("| `dd bs=4M conv=fsync`, file to file | %.0f MB/s |" % ddf)
    w("")
    w("### File to file, %d MiB" % mib)
    w("")
    w("Rate = plaintext bytes / wall time. CPU = user + system seconds (all threads). "
      "The Python ESDK reads the whole input into memory and is slow, so it ran on the first "
      "%d MiB of the same file; its rate is per byte and so compares directly." % esdk_mib)
    w("")
    w("| tool | setting | op | wall s | MB/s | CPU s | peak RSS MiB | hyok is |")
    w("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")

    def row(tool, setting, op, name, ours):
        b = best[name]
        mine = ours if ours is not None else rate(name)
        w("| %s | %s | %s | %.2f | %.0f | %.2f | %.1f | %s |"
          % (tool, setting, op, b["wall"], rate(name), b["cpu"], b["rss"] / 1024,
             fmt_ratio(mine / rate(name)) if ours is not None else "—"))

    row("hyok", "raw-aes key, suite 0x0478, 64 KiB frames", "encrypt", "hyok_encrypt", None)
    row("hyok", "", "decrypt", "hyok_decrypt", None)
    row("hyok --fsync", "the same, output flushed before the rename", "encrypt",
        "hyok_encrypt_fsync", None)
    row("hyok --fsync", "", "decrypt", "hyok_decrypt_fsync", None)
    row("dd", "bs=4M", "copy", "dd", enc)
    row("dd", "bs=256K", "copy", "dd_256k", enc)
    row("dd", "bs=4M conv=fsync", "copy", "dd_fsync", encf)
    for label, e, d, setting in peers:
        row(label, setting, "encrypt", e, enc)
        row(label, "", "decrypt", d, dec)
    w("")
    w("(“hyok is” = hyok's rate for the same operation ÷ this tool's rate; for `dd`, hyok "
      "encrypt ÷ the copy, with `--fsync` for `conv=fsync`.)")
    w("")
    w("### In process (`crates/hyok/examples/bench.rs`)")
    w("")
    w("256 MiB buffer, best of 5; encrypt with one `write_all` into a discarding writer, "
      "decrypt from memory through `BufRead`; the key step (data key generated and wrapped "
      "with a raw AES key) is included once per message.")
    w("")
    w("| | 1 thread | 2 threads | 2 ÷ 1 | 1 thread ÷ bare loop (wall) |")
    w("| --- | ---: | ---: | ---: | ---: |")
    w("| bare aws-lc-rs seal loop | %.2f GB/s | %.2f GB/s | %s | |"
      % (g["bare_seal"], g["bare_seal_2t"], fmt_ratio(bare2)))
    w("| hyok encrypt | %.2f GB/s | %.2f GB/s | %s | %s |"
      % (g["lib_encrypt_1t"], g["lib_encrypt_2t"], fmt_ratio(enc2), fmt_ratio(enc1_wall)))
    w("| hyok decrypt | %.2f GB/s | %.2f GB/s | %s | %s (of the open loop, %.2f GB/s) |"
      % (g["lib_decrypt_1t"], g["lib_decrypt_2t"], fmt_ratio(dec2), fmt_ratio(dec1_wall),
         g["bare_open"]))
    w("")
    w("Per CPU-second of the whole process (less disturbed by other load than wall time): "
      "bare seal %.2f, bare open %.2f; hyok encrypt %.2f (1 thread) / %.2f (2 threads), "
      "hyok decrypt %.2f / %.2f GB per CPU-second."
      % (g["bare_seal_cpu"], g["bare_open_cpu"], g["lib_encrypt_1t_cpu"],
         g["lib_encrypt_2t_cpu"], g["lib_decrypt_1t_cpu"], g["lib_decrypt_2t_cpu"]))
    w("")
    w("10,000 messages of 4 KiB, one thread, each with its own data key: encrypt %.0f "
      "messages/s, decrypt %.0f messages/s." % (g["msg_encrypt"], g["msg_decrypt"]))
    w("")
    w("Versions: age %s, Python ESDK %s, Tink %s, OpenSSL %s."
      % (meta.get("age", "?"), meta.get("esdk", "?"), meta.get("tink", "?"),
         meta.get("openssl", "?")))
    w(END)
    return "\n".join(out) + "\n"


def splice(path, section):
    text = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section, text, count=1)
    elif text:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        text = "# Benchmarks\n\nEach section is written by its own script; re-run it to refresh.\n\n" + section
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    meta = read_meta(os.path.join(args.dir, "meta.txt"))
    best = read_runs(os.path.join(args.dir, "results.txt"))
    inproc = read_inproc(os.path.join(args.dir, "inproc.txt"))
    splice(args.out, render(meta, best, inproc))


if __name__ == "__main__":
    main()
