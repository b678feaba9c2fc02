"""Properties of the byte-range headers a client sends: `Content-Range` on uploads, `Range` on blob reads."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from registry.api.blobs import _byte_range
from registry.errors import ErrorCode, RegistryError
from registry.services.blobs import parse_content_range
from tests.support.properties import PROPERTIES

INT64 = 2**63 - 1
numbers = (
    st.integers(0, 2**70).map(str) | st.just("9" * 5000) | st.sampled_from(["", "-1", "0x10", "\u0663", " 1"])
)
content_ranges = st.builds(
    "{}{}-{}{}".format,
    st.sampled_from(["", "bytes ", "bytes=", "Bytes "]),
    numbers,
    numbers,
    st.sampled_from(["", "/*", "/100", "/", "/-1"]),
)
ranges = st.builds("bytes={}-{}".format, numbers, numbers) | st.builds(
    "bytes={}-{},{}-{}".format, numbers, numbers, numbers, numbers
)
headers = st.text(max_size=40) | st.text("bytes=0123456789-, /*", max_size=40)


@PROPERTIES
@given(content_ranges | headers)
@example("0-" + "9" * 5000)  # int() refuses over 4,300 digits: was a ValueError, a 500
@example("\u0663-\u0664")  # Arabic-Indic digits match \d
def test_content_range_is_an_ordered_pair_or_a_416(header: str) -> None:
    try:
        parsed = parse_content_range(header)
    except RegistryError as error:
        assert (error.code, error.status) == (ErrorCode.BLOB_UPLOAD_INVALID, 416)
    else:
        assert 0 <= parsed.first <= parsed.last < 10**19
        assert parsed.length == parsed.last - parsed.first + 1 >= 1
        assert header.isascii()


@PROPERTIES
@given(ranges | headers, st.integers(0, INT64) | st.integers(0, 100))
@example("bytes=0-" + "9" * 5000, 10)  # was a ValueError, a 500
@example("bytes=-" + "9" * 5000, 10)
def test_range_is_inside_the_blob_or_a_416(header: str, size: int) -> None:
    try:
        wanted = _byte_range(header, size)
    except RegistryError as error:
        assert (error.code, error.status) == (ErrorCode.RANGE_INVALID, 416)
        assert error.headers == {"Content-Range": f"bytes */{size}"}
    else:
        if wanted is not None:
            start, end = wanted
            assert 0 <= start < end <= size
