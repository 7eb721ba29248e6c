"""Export and import of a session's variables: json, yaml, pickle (loaded only on request), parquet.

The document (`_document`) is built from one server-side snapshot; the formats (`_formats`,
`_parquet`) turn it into bytes and back exactly, with values in a portable form
(`_portable`) that keeps NaN, infinities, -0.0, int vs float and arrays bit for bit.
"""

from ._document import FORMAT, FORMAT_VERSION, MERGE_STRATEGIES, VOLATILE_FIELDS, check_document
from ._formats import FORMATS, MAX_IMPORT_BYTES, ImportFormatError, check_format, decode, encode
from ._portable import from_portable, to_portable

__all__ = [
    "FORMAT",
    "FORMATS",
    "FORMAT_VERSION",
    "MAX_IMPORT_BYTES",
    "MERGE_STRATEGIES",
    "VOLATILE_FIELDS",
    "ImportFormatError",
    "check_document",
    "check_format",
    "decode",
    "encode",
    "from_portable",
    "to_portable",
]
