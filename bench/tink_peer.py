#!/usr/bin/env python3
"""Tink's Python streaming AEAD as a benchmark peer of hyok (bench/run.sh).

    tink_peer.py keygen KEYSET            new AES256_GCM_HKDF_1MB keyset (cleartext JSON)
    tink_peer.py encrypt KEYSET IN OUT    stream IN to OUT
    tink_peer.py decrypt KEYSET IN OUT

The keyset is written in cleartext: it is a throwaway benchmark key, never a real one.
Files are streamed in 1 MiB pieces, so memory stays small whatever the size.
"""

import shutil
import sys

import tink
from tink import secret_key_access, streaming_aead

PIECE = 1 << 20
AAD = b"hyok-bench"


def load(path):
    with open(path, "r", encoding="utf-8") as handle:
        return tink.json_proto_keyset_format.parse(handle.read(), secret_key_access.TOKEN)


def main(argv):
    streaming_aead.register()
    if len(argv) == 2 and argv[0] == "keygen":
        template = streaming_aead.streaming_aead_key_templates.AES256_GCM_HKDF_1MB
        handle = tink.new_keyset_handle(template)
        with open(argv[1], "w", encoding="utf-8") as out:
            out.write(tink.json_proto_keyset_format.serialize(handle, secret_key_access.TOKEN))
        return 0
    if len(argv) != 4 or argv[0] not in ("encrypt", "decrypt"):
        sys.stderr.write(__doc__)
        return 2
    op, keyset, src, dst = argv
    primitive = load(keyset).primitive(streaming_aead.StreamingAead)
    with open(src, "rb") as inp, open(dst, "wb") as out:
        if op == "encrypt":
            with primitive.new_encrypting_stream(out, AAD) as enc:
                shutil.copyfileobj(inp, enc, PIECE)
        else:
            with primitive.new_decrypting_stream(inp, AAD) as dec:
                shutil.copyfileobj(dec, out, PIECE)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
