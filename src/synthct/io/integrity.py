"""Check an image file's own header and payload before ITK reads it.

ITK is lenient where a wrong image would be silently produced, so these checks run first (each raises
``ValueError`` with one line in the user's terms):

* **Where the data are.** A MetaImage header can point its voxels at any readable file (``ElementDataFile =
  /dev/zero``) and a NRRD header at a detached ``data file``; ITK follows. Accepted: ``LOCAL`` in a ``.mha``, one
  relative file in the header's own folder for a ``.mhd``, no detached data for ``.nrrd``. NIfTI ``.nii``/``.nii.gz``
  has no external-file field.
* **Complete, uncorrupted payload.** ITK's MetaImage reader prints ``Uncompress failed`` on stderr and returns zeros
  for a damaged zlib stream, and its NIfTI/NRRD readers return whatever a damaged or short gzip stream decodes to. So
  a compressed payload is decompressed here once, in bounded chunks (the output is counted, not kept), which verifies
  zlib's Adler-32 / gzip's CRC-32 and the decoded length against the header's sizes; an uncompressed payload's byte
  count is compared with the header's (DimSize × type size). Cost: one extra decompression pass (~0.3 s per 100 MB).

Redirecting ITK's messages instead would not do: MetaIO writes ``Uncompress failed`` with ``std::cerr`` (not ITK's
output window), so catching it means swapping file descriptor 2 process-wide around each read, and NIfTI/NRRD print
nothing at all for a bad CRC.

Formats or fields the checks do not understand (other encodings, unknown voxel types) are left to ITK unchanged.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

_CHUNK = 1 << 20  # bytes read / decoded per step
_MAX_HEADER = 1 << 20  # a text header longer than this is rejected (real ones are < 2 kB)

#: MetaIO element type → bytes (MET_LONG/MET_ULONG are platform-defined in MetaIO: not checked).
_MET_SIZES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
              "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8}
#: NRRD type names (normalised: lower case, single spaces) → bytes.
_NRRD_SIZES = {**dict.fromkeys(("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t"), 1),
               **dict.fromkeys(("short", "short int", "signed short", "signed short int", "int16", "int16_t",
                                "ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"), 2),
               **dict.fromkeys(("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32",
                                "uint32_t", "float"), 4),
               **dict.fromkeys(("longlong", "long long", "long long int", "signed long long",
                                "signed long long int", "int64", "int64_t", "ulonglong", "unsigned long long",
                                "unsigned long long int", "uint64", "uint64_t", "double"), 8)}


def check_image_file(path: Path) -> None:
    """Raise ``ValueError("<problem>")`` if ``path``'s header points outside it or its payload is short or corrupt."""
    name = path.name.lower()
    if name.endswith((".mha", ".mhd")):
        _check_metaimage(path)
    elif name.endswith(".nrrd"):
        _check_nrrd(path)
    elif name.endswith((".nii", ".nii.gz")):
        _check_nifti(path, gz=name.endswith(".gz"))


def _text_header(path: Path, last_key: str | None) -> tuple[list[tuple[str, str]], int] | None:
    """``key = value`` (MetaImage) or ``key: value`` (NRRD) fields and the payload offset, or None if not such a file.

    MetaImage's header ends after ``last_key``'s line, NRRD's at the first empty line.
    """
    sep = "=" if last_key else ":"
    fields: list[tuple[str, str]] = []
    offset = 0
    with path.open("rb") as f:
        while offset < _MAX_HEADER:
            raw = f.readline(_MAX_HEADER)
            if fields and not raw.endswith(b"\n"):
                end = "an ElementDataFile line" if last_key else "the blank line that ends it"
                raise ValueError(f"truncated data: the file ends inside its header, before {end}")
            if not raw:
                return None  # empty file: ITK reports it
            offset += len(raw)
            line = raw.decode("latin-1").rstrip("\r\n")
            if not last_key and not line:
                return fields, offset
            if line.startswith("#") or (not last_key and offset == len(raw)):
                continue  # NRRD comment or magic line
            key, found, value = line.partition(sep)
            if not found or not key.strip():
                return None
            fields.append((key.strip().lower(), value.strip()))
            if last_key and key.strip().lower() == last_key:
                return fields, offset
    raise ValueError(f"header longer than {_MAX_HEADER} bytes without its end marker")


def _dims(text: str, what: str) -> list[int]:
    try:
        dims = [int(v) for v in text.split()]
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a list of integers") from None
    if not dims or min(dims) < 1:
        raise ValueError(f"{what} {text!r} must be positive")
    return dims


def _check_metaimage(path: Path) -> None:
    parsed = _text_header(path, "elementdatafile")
    if parsed is None:
        return
    fields, offset = parsed
    header = dict(fields)
    data_file = header["elementdatafile"]
    if path.name.lower().endswith(".mha"):
        if data_file.upper() != "LOCAL":
            raise ValueError(f"ElementDataFile = {data_file} points outside the file; a .mha must hold its data "
                             "(ElementDataFile = LOCAL)")
        data_path, start = path, offset
    else:
        data_path = _mhd_data_file(path, data_file)
        start = int(header.get("headersize", "0") or 0)
    dims = _dims(header.get("dimsize", ""), "DimSize")
    size = _MET_SIZES.get(header.get("elementtype", "").upper())
    if size is None:
        return
    channels = int(header.get("elementnumberofchannels", "1") or 1)
    expected = math.prod(dims) * size * channels
    what = f"DimSize {' x '.join(map(str, dims))} of {header['elementtype']}"
    stored = data_path.stat().st_size - start
    if header.get("compresseddata", "false").lower() == "true":
        declared = header.get("compresseddatasize")
        if declared is not None and int(declared) > stored:
            raise ValueError(f"truncated data: CompressedDataSize = {declared} bytes, the file holds {stored}")
        with data_path.open("rb") as f:
            f.seek(start)
            total, complete = _decoded_length(f, stored if declared is None else int(declared), expected, gz=False)
        _check_decoded(total, complete, expected, what)
        if total > expected:
            raise ValueError(f"{what} needs {expected} bytes, the compressed data decode to more (DimSize smaller "
                             "than the data)")
    elif start >= 0 and stored < expected:
        raise ValueError(f"{what} needs {expected} bytes, the file holds {stored} (truncated data or DimSize larger "
                         "than the data)")


def _mhd_data_file(header: Path, name: str) -> Path:
    """The data file of a .mhd: one relative file in the header's folder (no LIST, pattern, path or LOCAL)."""
    if name.upper() == "LOCAL" or name.upper().startswith("LIST") or " " in name or "%" in name:
        raise ValueError(f"ElementDataFile = {name}: a .mhd must name one data file next to it (e.g. image.raw)")
    candidate = Path(name)
    if candidate.is_absolute() or candidate.name != name or name in (".", ".."):
        raise ValueError(f"ElementDataFile = {name} points outside the folder of {header.name}; name a file in the "
                         "same folder")
    data = header.parent / name
    if not data.is_file() or data.resolve().parent != header.parent.resolve():
        raise ValueError(f"ElementDataFile = {name}: no such file in the folder of {header.name}")
    return data


def _decoded_length(f: BinaryIO, stored: int, limit: int, gz: bool) -> tuple[int, bool]:
    """Decode up to ``stored`` bytes of a zlib (``gz`` False) or gzip stream read from ``f``, counting the output.

    Stops once more than ``limit`` bytes came out. Returns (decoded length, whether the stream ended properly, i.e.
    its Adler-32 / CRC-32 + length trailer verified). Concatenated gzip members are followed.
    """
    wbits = 31 if gz else 15
    decoder = zlib.decompressobj(wbits)
    total, left, pending = 0, stored, b""
    try:
        while total <= limit:
            if not pending:
                pending = f.read(min(_CHUNK, left)) if left > 0 else b""
                if not pending:
                    return total, False
                left -= len(pending)
            total += len(decoder.decompress(pending, _CHUNK))
            pending = decoder.unconsumed_tail
            if decoder.eof:
                pending = decoder.unused_data
                if not pending and left > 0:
                    pending = f.read(min(_CHUNK, left))
                    left -= len(pending)
                if not (gz and pending[:2] == b"\x1f\x8b"):
                    return total, True  # end of the stream; trailing bytes are not data
                decoder = zlib.decompressobj(wbits)
    except zlib.error as exc:
        raise ValueError(f"corrupt compressed data ({'gzip' if gz else 'zlib'}: {exc})") from None
    return total, True


def _check_decoded(total: int, complete: bool, expected: int, what: str) -> None:
    if not complete:
        raise ValueError(f"truncated compressed data: the stream breaks off after {total} decoded bytes ({what} "
                         f"needs {expected})")
    if total < expected:
        raise ValueError(f"{what} needs {expected} bytes, the compressed data decode to {total} (truncated data or "
                         "sizes larger than the data)")


def _nifti_bytes(head: bytes) -> tuple[int, str] | None:
    """(bytes a NIfTI-1/2 file needs: voxel offset + voxels × bitpix/8, its shape text) from its first 540 bytes.

    None if ``head`` is no NIfTI header this check understands (ITK judges those).
    """
    if len(head) < 348:
        return None
    for order in "<>":
        (hdr_size,) = struct.unpack(order + "i", head[:4])
        if hdr_size in (348, 540):
            break
    else:
        return None
    if hdr_size == 348:
        dim = struct.unpack(order + "8h", head[40:56])
        bitpix = struct.unpack(order + "h", head[72:74])[0]
        offset = int(struct.unpack(order + "f", head[108:112])[0])
    elif len(head) >= 540:
        bitpix = struct.unpack(order + "h", head[14:16])[0]
        dim = struct.unpack(order + "8q", head[16:80])
        offset = struct.unpack(order + "q", head[168:176])[0]
    else:
        return None
    if not 1 <= dim[0] <= 7 or bitpix <= 0 or min(dim[1:dim[0] + 1]) < 1:
        return None
    shape = dim[1:dim[0] + 1]
    return max(offset, hdr_size) + math.prod(shape) * bitpix // 8, f"dim {' x '.join(map(str, shape))} of " \
        f"{bitpix}-bit voxels"


def _check_nifti(path: Path, gz: bool) -> None:
    with path.open("rb") as f:
        if gz:
            try:
                head = zlib.decompressobj(31).decompress(f.read(4096), 540)
            except zlib.error as exc:
                raise ValueError(f"corrupt compressed data (gzip: {exc})") from None
            f.seek(0)
        else:
            head = f.read(540)
        if len(head) < 348:
            if gz:
                total, complete = _decoded_length(f, path.stat().st_size, 348, gz=True)
                _check_decoded(total, complete, 348, "a NIfTI header")
            raise ValueError(f"truncated data: {len(head)} bytes, shorter than a NIfTI header (348)")
        needs = _nifti_bytes(head)
        if needs is None:
            return
        expected, what = needs
        if not gz:
            stored = path.stat().st_size
            if stored < expected:
                raise ValueError(f"{what} needs {expected} bytes, the file holds {stored} (truncated data or dim "
                                 "larger than the data)")
            return
        total, complete = _decoded_length(f, path.stat().st_size, expected, gz=True)
    _check_decoded(total, complete, expected, what)


def _check_nrrd(path: Path) -> None:
    parsed = _text_header(path, None)
    if parsed is None:
        return
    fields, offset = parsed
    header = dict(fields)
    for key in ("data file", "datafile"):
        if key in header:
            raise ValueError(f"detached data ({key}: {header[key]}); a .nrrd must hold its data")
    if "line skip" in header or "lineskip" in header or "byte skip" in header or "byteskip" in header:
        return
    size = _NRRD_SIZES.get(" ".join(header.get("type", "").lower().split()))
    if size is None or "sizes" not in header:
        return
    expected = math.prod(_dims(header["sizes"], "sizes")) * size
    encoding = header.get("encoding", "")
    with path.open("rb") as f:
        f.seek(offset)
        what = f"sizes {header['sizes']} of {header['type']}"
        if encoding in ("gzip", "gz"):
            total, complete = _decoded_length(f, path.stat().st_size - offset, expected, gz=True)
            _check_decoded(total, complete, expected, what)
        elif encoding == "raw" and path.stat().st_size - offset < expected:
            raise ValueError(f"{what} needs {expected} bytes, the file holds {path.stat().st_size - offset} "
                             "(truncated data or sizes larger than the data)")
