#!/usr/bin/env python3
"""Reference peer for hyok's interop tests.

Encrypts or decrypts one AWS Encryption SDK message with the official Python implementation
(`aws-encryption-sdk`, tested with 4.0.7) and a single raw wrapping key (the SDK's
RawMasterKey). Everything happens locally: no AWS credentials, no network.

    esdk_peer.py encrypt|decrypt
        (--key-file K | --rsa-private PEM | --rsa-public PEM)
        --key-namespace NS --key-name NAME
        [--rsa-padding pkcs1|oaep-sha1|oaep-sha256|oaep-sha384|oaep-sha512]
        [--context K=V]... [--suite committing|committing-signed|HEX]
        [--frame-length N] [--allow-legacy] IN OUT

IN / OUT may be '-' for stdin / stdout. --key-file holds the raw AES key bytes (16, 24 or
32). On encrypt, --context pairs form the encryption context; on decrypt each pair must be
in the message's stored context. Exit status: 0 success, 1 the SDK (or reading a key or
file) failed, 2 bad arguments, 3 decrypted but a --context pair is missing from the message
(OUT is not written then).
"""

import argparse
import logging
import os
import sys

import aws_encryption_sdk
from aws_encryption_sdk.identifiers import (
    Algorithm,
    CommitmentPolicy,
    EncryptionKeyType,
    WrappingAlgorithm,
)
from aws_encryption_sdk.key_providers.raw import RawMasterKey, WrappingKey

NAMED_SUITES = {"committing": 0x0478, "committing-signed": 0x0578}

AES_WRAPPING = {
    16: WrappingAlgorithm.AES_128_GCM_IV12_TAG16_NO_PADDING,
    24: WrappingAlgorithm.AES_192_GCM_IV12_TAG16_NO_PADDING,
    32: WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
}

RSA_WRAPPING = {
    "pkcs1": WrappingAlgorithm.RSA_PKCS1,
    "oaep-sha1": WrappingAlgorithm.RSA_OAEP_SHA1_MGF1,
    "oaep-sha256": WrappingAlgorithm.RSA_OAEP_SHA256_MGF1,
    "oaep-sha384": WrappingAlgorithm.RSA_OAEP_SHA384_MGF1,
    "oaep-sha512": WrappingAlgorithm.RSA_OAEP_SHA512_MGF1,
}

EXIT_OK, EXIT_FAILED, EXIT_CONTEXT = 0, 1, 3


class PeerError(Exception):
    """A failure reported as one line with exit status 1."""


def utf8_arg(text):
    # Under a C/POSIX locale, argv may arrive with surrogate escapes; get the real UTF-8 back.
    return os.fsencode(text).decode("utf-8")


def context_pair(text):
    text = utf8_arg(text)
    if "=" not in text:
        raise argparse.ArgumentTypeError("want K=V, got %r" % text)
    key, value = text.split("=", 1)
    return key, value


def suite(text):
    suite_id = NAMED_SUITES.get(text)
    if suite_id is None:
        try:
            suite_id = int(text, 16)
        except ValueError:
            raise argparse.ArgumentTypeError("unknown suite %r" % text)
    try:
        return Algorithm.get_by_id(suite_id)
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError("unknown suite id 0x%04x" % suite_id)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="esdk_peer.py",
        description="Encrypt/decrypt one ESDK message with the official Python ESDK.",
    )
    parser.add_argument("operation", choices=["encrypt", "decrypt"])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--key-file", metavar="K", help="raw AES key bytes")
    source.add_argument("--rsa-private", metavar="PEM", help="RSA private key (PEM)")
    source.add_argument("--rsa-public", metavar="PEM", help="RSA public key (PEM), encrypt only")
    parser.add_argument("--key-namespace", required=True, type=utf8_arg, metavar="NS")
    parser.add_argument("--key-name", required=True, type=utf8_arg, metavar="NAME")
    parser.add_argument("--rsa-padding", choices=sorted(RSA_WRAPPING), default="oaep-sha256")
    parser.add_argument("--context", action="append", type=context_pair, default=[],
                        metavar="K=V")
    parser.add_argument("--suite", type=suite, default=suite("committing-signed"))
    parser.add_argument("--frame-length", type=int, default=4096, metavar="N")
    parser.add_argument("--allow-legacy", action="store_true")
    parser.add_argument("input", metavar="IN")
    parser.add_argument("output", metavar="OUT")
    return parser


def read_input(path):
    if path == "-":
        return sys.stdin.buffer.read()
    with open(path, "rb") as handle:
        return handle.read()


def write_output(path, data):
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    with open(path, "wb") as handle:
        handle.write(data)


def make_master_key(args):
    if args.key_file is not None:
        material = read_input(args.key_file)
        if len(material) not in AES_WRAPPING:
            raise PeerError("AES key file holds %d bytes, want 16, 24 or 32" % len(material))
        wrapping = AES_WRAPPING[len(material)]
        key_type = EncryptionKeyType.SYMMETRIC
    else:
        pem_path = args.rsa_private if args.rsa_private is not None else args.rsa_public
        material = read_input(pem_path)
        wrapping = RSA_WRAPPING[args.rsa_padding]
        key_type = (EncryptionKeyType.PRIVATE if args.rsa_private is not None
                    else EncryptionKeyType.PUBLIC)
    wrapping_key = WrappingKey(wrapping_algorithm=wrapping, wrapping_key=material,
                               wrapping_key_type=key_type)
    return RawMasterKey(provider_id=args.key_namespace,
                        key_id=args.key_name.encode("utf-8"),
                        wrapping_key=wrapping_key)


def encrypt(args, master_key):
    # The SDK refuses non-committing suites under a REQUIRE_ENCRYPT policy; allow them on
    # request, since making legacy test data is one of this script's uses.
    policy = (CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT if args.suite.is_committing()
              else CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT)
    client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=policy)
    message, _header = client.encrypt(
        source=read_input(args.input),
        key_provider=master_key,
        encryption_context=dict(args.context),
        algorithm=args.suite,
        frame_length=args.frame_length,
    )
    write_output(args.output, message)
    return EXIT_OK


def decrypt(args, master_key):
    policy = (CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT if args.allow_legacy
              else CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
    client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=policy)
    plaintext, header = client.decrypt(source=read_input(args.input), key_provider=master_key)
    stored = header.encryption_context
    missing = [(k, v) for k, v in args.context if stored.get(k) != v]
    if missing:
        sys.stderr.write("context mismatch: %r not in the message's context %r\n"
                         % (missing, stored))
        return EXIT_CONTEXT
    write_output(args.output, plaintext)
    return EXIT_OK


def main(argv=None):
    args = build_parser().parse_args(argv)  # exits 2 on bad arguments
    if args.operation == "decrypt" and args.rsa_public is not None:
        sys.stderr.write("decrypt needs --rsa-private or --key-file\n")
        return 2
    # The SDK logs tracebacks for some expected failures; keep stderr to our one line.
    logging.getLogger("aws_encryption_sdk").setLevel(logging.CRITICAL)
    try:
        master_key = make_master_key(args)
        if args.operation == "encrypt":
            return encrypt(args, master_key)
        return decrypt(args, master_key)
    except Exception as exc:  # the SDK raises many types; all mean "operation failed"
        text = str(exc).replace("\n", " ")
        sys.stderr.write("%s failed: %s: %s\n" % (args.operation, type(exc).__name__, text))
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
