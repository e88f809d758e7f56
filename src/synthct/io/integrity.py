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

* **The header as MetaIO reads it.** MetaIO skips blank lines, takes ``=`` or ``:`` as the separator and matches
  keys case-sensitively; the MetaImage header is parsed the same way here, and what cannot be parsed or checked (a
  line without a separator, a key in another spelling, an unknown or platform-sized ElementType, text voxels,
  compressed data without ``CompressedDataSize``, a non-integer size, ``ElementNumberOfChannels`` other than 1, a
  ``HeaderSize`` in a ``.mha`` or beyond a ``.mhd``'s data file) is refused, never passed on to ITK unchecked.

NRRD or NIfTI fields the checks do not understand (other encodings, unknown voxel types) are left to ITK unchanged.
"""

from __future__ import annotations

import itertools
import math
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

_CHUNK = 1 << 20  # bytes read / decoded per step
_MAX_HEADER = 1 << 20  # a text header longer than this is rejected (real ones are < 2 kB)

#: MetaIO element type → bytes (MET_LONG/MET_ULONG are platform-defined in MetaIO: refused).
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


#: The MetaImage keys the checks read, as MetaIO spells them (it matches keys case-sensitively).
_MET_KEYS = {k.lower(): k for k in ("ObjectType", "NDims", "DimSize", "ElementType", "ElementDataFile",
                                    "CompressedData", "CompressedDataSize", "HeaderSize", "ElementNumberOfChannels",
                                    "BinaryData")}


def _quote(text: str, limit: int = 60) -> str:
    """``text`` as a short one-line repr for messages (control characters escaped, long values cut)."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


def _metaimage_header(path: Path) -> tuple[dict[str, str], int]:
    """The ``Key = Value`` fields of a MetaImage header up to ``ElementDataFile`` and the payload offset, parsed as
    MetaIO parses them (blank lines skipped; ``=`` or ``:`` separates; keys case-sensitive).

    Raises:
        ValueError: an empty file, a header that ends early or is too long, a line without a separator, or a key
            in another spelling than MetaIO's.
    """
    fields: dict[str, str] = {}
    offset = 0
    with path.open("rb") as f:
        for number in itertools.count(1):
            raw = f.readline(_MAX_HEADER)
            if not raw and offset == 0:
                raise ValueError("empty file, not a MetaImage")
            complete = raw.endswith(b"\n")
            if not complete and len(raw) >= _MAX_HEADER:
                break
            offset += len(raw)
            if offset > _MAX_HEADER:
                break
            line = raw.decode("latin-1").strip()
            if not complete and fields:
                raise ValueError("truncated data: the file ends inside its header, before an ElementDataFile line")
            if not line and complete:
                continue
            cuts = [i for i in (line.find("="), line.find(":")) if i >= 0]
            if not cuts or min(cuts) == 0:
                raise ValueError(f"unreadable image (not a MetaImage header: line {number} {_quote(line)} is not "
                                 "'Key = Value')")
            if not complete:
                raise ValueError("truncated data: the file ends inside its header, before an ElementDataFile line")
            key, value = line[: min(cuts)].strip(), line[min(cuts) + 1:].strip()
            spelled = _MET_KEYS.get(key.lower())
            if spelled is not None and key != spelled:
                raise ValueError(f"header key {_quote(key)} must be spelled {spelled!r} (MetaIO matches keys "
                                 "case-sensitively)")
            fields[key] = value
            if key == "ElementDataFile":
                return fields, offset
    raise ValueError(f"header longer than {_MAX_HEADER} bytes without its end marker")


def _met_int(header: dict[str, str], key: str, default: int) -> int:
    """An integer field of a MetaImage header; ValueError quoting it when it is not a whole number."""
    text = header.get(key)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{key} = {_quote(text)} is not a whole number") from None


def _nrrd_header(path: Path) -> tuple[list[tuple[str, str]], int] | None:
    """``key: value`` fields of a NRRD header and the payload offset (it ends at the first empty line), or None if
    this is no such header (ITK judges it)."""
    fields: list[tuple[str, str]] = []
    offset = 0
    with path.open("rb") as f:
        while offset < _MAX_HEADER:
            raw = f.readline(_MAX_HEADER)
            if fields and not raw.endswith(b"\n"):
                raise ValueError("truncated data: the file ends inside its header, before the blank line that ends it")
            if not raw:
                return None  # empty file: ITK reports it
            offset += len(raw)
            line = raw.decode("latin-1").rstrip("\r\n")
            if not line:
                return fields, offset
            if line.startswith("#") or offset == len(raw):
                continue  # comment or magic line
            key, found, value = line.partition(":")
            if not found or not key.strip():
                return None
            fields.append((key.strip().lower(), value.strip()))
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
    header, offset = _metaimage_header(path)
    data_file = header["ElementDataFile"]
    if path.name.lower().endswith(".mha"):
        if data_file.upper() != "LOCAL":
            raise ValueError(f"ElementDataFile = {data_file} points outside the file; a .mha must hold its data "
                             "(ElementDataFile = LOCAL)")
        if _met_int(header, "HeaderSize", 0) != 0:
            raise ValueError(f"HeaderSize = {_quote(header['HeaderSize'])} in a .mha: its data must follow the "
                             "header (ElementDataFile = LOCAL, no HeaderSize)")
        data_path, start = path, offset
    else:
        data_path = _mhd_data_file(path, data_file)
        start = _met_int(header, "HeaderSize", 0)
    dims = _dims(header.get("DimSize", ""), "DimSize")
    expected, what = _met_bytes(header, dims)
    data_size = data_path.stat().st_size
    if start > data_size or start < -1:
        raise ValueError(f"HeaderSize = {start} lies outside the data file ({data_size} bytes)")
    stored = data_size - start
    if header.get("CompressedData", "false").lower() == "true":
        if "CompressedDataSize" not in header:
            raise ValueError("CompressedData = True without CompressedDataSize: ITK cannot decode that reliably; "
                             "write the image again (e.g. with SimpleITK)")
        declared = _met_int(header, "CompressedDataSize", 0)
        if start == -1 or declared < 0:
            raise ValueError(f"CompressedDataSize = {declared} with HeaderSize = {start} is not readable")
        if declared > stored:
            raise ValueError(f"truncated data: CompressedDataSize = {declared} bytes, the file holds {stored}")
        with data_path.open("rb") as f:
            f.seek(start)
            total, complete = _decoded_length(f, declared, expected, gz=False)
        _check_decoded(total, complete, expected, what)
        if total > expected:
            raise ValueError(f"{what} needs {expected} bytes, the compressed data decode to more (DimSize smaller "
                             "than the data)")
    elif start >= 0 and stored < expected:
        raise ValueError(f"{what} needs {expected} bytes, the file holds {stored} (truncated data or DimSize larger "
                         "than the data)")


def _met_bytes(header: dict[str, str], dims: list[int]) -> tuple[int, str]:
    """(payload bytes the header's DimSize and ElementType need, a description); ValueError for what is not checked."""
    if "NDims" in header and _met_int(header, "NDims", 0) != len(dims):
        raise ValueError(f"NDims = {_quote(header['NDims'])} but DimSize has {len(dims)} values")
    element = header.get("ElementType", "")
    size = _MET_SIZES.get(element.upper())
    if size is None:
        raise ValueError(f"ElementType = {_quote(element)} is not supported (expected one of {sorted(_MET_SIZES)})")
    channels = _met_int(header, "ElementNumberOfChannels", 1)
    if channels != 1:
        raise ValueError(f"ElementNumberOfChannels = {channels}: expected 1 (a scalar image)")
    if header.get("BinaryData", "true").lower() != "true":
        raise ValueError(f"BinaryData = {_quote(header['BinaryData'])}: text voxels are not supported")
    return math.prod(dims) * size, f"DimSize {' x '.join(map(str, dims))} of {element}"


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
    parsed = _nrrd_header(path)
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
