"""Signed models: an Ed25519 signature over the whole .tflite, carried inside it. cryptography.

A device told to trust a public key (`hh-camera --trust KEY.pub`) runs only models signed with
its private key, which never leaves the workstation (`hh-data keygen`, `hh-convert --sign`). The
signature covers every byte of the model as hh-convert wrote it: the network, its labels, spec,
self-test and display names. It travels in the comment of the zip archive that ends every hh
model (the packed files), a field no reader of the model or its files looks at: the signed
bytes are the file with that comment empty, which is exactly the file before signing. No
hand-written cryptography: keys, signing and verification are the `cryptography` package's.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import struct
from pathlib import Path

from .errors import ModelFileError, UserError
from .files import read_regular_file
from .spec import control_problem

log = logging.getLogger("hh")

END_OF_ARCHIVE = b"PK\x05\x06"  # the zip's end-of-central-directory record: 22 bytes and its comment
END_SIZE = 22
SIGNATURE_TAG = b"hh-signature ed25519 "


def _crypto():
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:  # pragma: no cover - a dependency of hh[edge]
        raise UserError("signed models need the 'cryptography' package (pip install '.[edge]')") from None
    return ed25519, serialization, InvalidSignature


def key_id(public_key) -> str:
    """A short name for a public key: the start of the SHA-256 of its 32 bytes."""
    _, serialization, _ = _crypto()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:12]


def new_key_pair(stem: str | Path) -> tuple[Path, Path, str]:
    """STEM.key (the private key, PEM, readable by its owner only) and STEM.pub; and the key id.
    Existing files are never replaced."""
    ed25519, serialization, _ = _crypto()
    given = str(stem)
    stem = Path(stem).expanduser()
    if stem.suffix in (".key", ".pub"):  # `keygen field.key` means the pair named field
        stem = stem.with_suffix("")
    if control_problem(given):
        raise UserError(f"{given!r}: a key's name holds a control character; give a plain file name")
    if not stem.name or stem.name in (".", "..") or given.endswith(("/", "\\")) or stem.is_dir():
        raise UserError(f"{given!r}: give the key pair a file name (in that folder: {given.rstrip('/')}/field), not a folder")
    private_path, public_path = stem.with_name(stem.name + ".key"), stem.with_name(stem.name + ".pub")
    for path in (private_path, public_path):
        if os.path.lexists(path):
            raise UserError(f"{path} exists: a key is never replaced (choose another name)")
    if not stem.parent.is_dir():
        # A keys folder of its own (~/.hh on a new machine): made, readable by its owner only.
        try:
            stem.parent.mkdir(parents=True, mode=0o700)
        except OSError as exc:
            raise UserError(f"{stem.parent}: cannot make the folder for the keys ({exc.strerror})") from None
    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    created: list[Path] = []
    try:
        # O_EXCL: a name taken since the check (a link, even a dangling one) is not written through.
        for path, pem, mode in ((private_path, private_pem, 0o600), (public_path, public_pem, 0o644)):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            created.append(path)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(pem)
    except BaseException as exc:  # half a pair is no pair: what this call made goes
        for path in created:
            path.unlink(missing_ok=True)
        if isinstance(exc, FileExistsError):
            raise UserError(f"{exc.filename} exists: a key is never replaced (choose another name)") from None
        if isinstance(exc, OSError):
            raise UserError(f"{stem.parent}: cannot write the keys there ({exc.strerror})") from None
        raise
    return private_path, public_path, key_id(key.public_key())


MAX_KEY_BYTES = 64 * 1024  # a PEM key is a few hundred bytes


def _read_pem(path: str | Path, what: str) -> bytes:
    data = read_regular_file(path, f"{what} file", MAX_KEY_BYTES)
    if b"-----BEGIN" not in data:
        raise UserError(f"{path}: not a {what} (a PEM file made by hh-data keygen)")
    if data.count(b"-----BEGIN") > 1:
        # PEM readers take the first block and ignore the rest: a device would trust one key of
        # two without a word. One key a file; a device that trusts two keys is not a thing hh does.
        raise UserError(f"{path}: holds {data.count(b'-----BEGIN')} keys; give a file with one {what}")
    return data


def load_private_key(path: str | Path):
    ed25519, serialization, _ = _crypto()
    data = _read_pem(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise UserError(f"{path}: the private key is protected by a password, which hh does not ask for") from None
    except ValueError:
        raise UserError(f"{path}: not a private key (a .key file made by hh-data keygen; a .pub is the public half)") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise UserError(f"{path}: not an Ed25519 key (make one with hh-data keygen)")
    if Path(path).stat().st_mode & 0o077:
        log.warning(f"warning: {path} can be read by others than you: whoever reads it can sign models (chmod 600 {path})")
    return key


def load_public_key(path: str | Path):
    ed25519, serialization, _ = _crypto()
    data = _read_pem(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise UserError(f"{path}: not a public key (the .pub file made by hh-data keygen)") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise UserError(f"{path}: not an Ed25519 public key (make one with hh-data keygen)")
    return key


def _end_of_archive(model: bytes) -> int | None:
    """Where the zip's end record starts, when it is the file's last thing (its comment included)."""
    low = max(0, len(model) - END_SIZE - 65535)
    at = model.rfind(END_OF_ARCHIVE, low)
    while at >= 0:
        if at + END_SIZE <= len(model):
            (comment_length,) = struct.unpack_from("<H", model, at + 20)
            if at + END_SIZE + comment_length == len(model):
                return at
        at = model.rfind(END_OF_ARCHIVE, low, at)
    return None


def sign_model(model: bytes, private_key) -> bytes:
    """The model with its signature in the comment of its packed files' archive."""
    end = _end_of_archive(model)
    if end is None or struct.unpack_from("<H", model, end + 20)[0] != 0:
        raise ValueError("the model has no packed files to carry a signature, or is signed already")
    signature = private_key.sign(model)
    comment = SIGNATURE_TAG + key_id(private_key.public_key()).encode() + b" " + base64.b64encode(signature)
    return model[: end + 20] + struct.pack("<H", len(comment)) + comment


def check_signature(path: str | Path, model: bytes, public_key) -> str:
    """The key id when `model` (the bytes of `path`) is signed with `public_key`'s private key;
    otherwise a ModelFileError that says why: unsigned, signed with another key, or altered."""
    _, _, invalid_signature = _crypto()
    end = _end_of_archive(model)
    comment = model[end + END_SIZE :] if end is not None else b""
    if end is None or not comment.startswith(SIGNATURE_TAG):
        if SIGNATURE_TAG in model[-(END_SIZE + 65535) :]:  # a signature, no longer where it belongs
            raise ModelFileError(f"{path}: altered after signing (bytes added or removed at its end); not run")
        raise ModelFileError(f"{path}: not signed, and this device runs signed models only (hh-convert --sign)")
    expected = key_id(public_key)
    parts = comment[len(SIGNATURE_TAG) :].split(b" ")
    if len(parts) != 2:
        raise ModelFileError(f"{path}: its signature is damaged (altered after signing); not run")
    if parts[0].decode("ascii", "replace") != expected:
        named = parts[0].decode("ascii", "replace")
        raise ModelFileError(f"{path}: signed with another key ({named}), not the trusted one ({expected})")
    try:
        signature = base64.b64decode(parts[1], validate=True)
        public_key.verify(signature, model[: end + 20] + b"\x00\x00")
    except (ValueError, invalid_signature):
        raise ModelFileError(
            f"{path}: its signature does not match its bytes: the file was altered after signing; not run"
        ) from None
    return expected
