"""Hypothesis strategies for the value classes that used to crash the service (issue 15):
extreme dates and numbers, lone surrogates, NUL characters and over-long strings."""

from __future__ import annotations

from hypothesis import strategies as st

EXTREME_DATES = st.one_of(
    st.sampled_from(
        [
            "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
            "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
            "0001-01-01",
            "9999-12-31",
            "0001",
            "9999-12",
            "0000-01-01T00:00:00Z",
        ]
    ),
    st.builds(
        "{:04d}-{:02d}-{:02d}T{:02d}:00:00{}".format,
        st.sampled_from([1, 2, 9997, 9999]),
        st.integers(1, 12),
        st.integers(1, 28),
        st.integers(0, 23),
        st.sampled_from(["Z", "+14:00", "-14:00", "+01:00", "-01:00"]),
    ),
)
EXTREME_NUMBERS = st.one_of(
    st.sampled_from([1e30, 1e-30, 1e308, -1e308, 5e-324, 10**40, 0, -0.0]),
    st.sampled_from([400, 1000]).map(lambda digits: 10**digits),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e308, max_value=1e308),
    st.integers(min_value=-(10**60), max_value=10**60),
)
SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\ud83d", "\udc00b", "x" * 5 + "\ud800"])
NUL_TEXT = st.sampled_from(["\x00", "a\x00b", "\x00" * 3, "Patient/\x00"])
OVERLONG_TEXT = st.tuples(st.sampled_from("xé"), st.sampled_from([300, 5_000, 100_000])).map(
    lambda pair: pair[0] * pair[1]
)
EXTREME_VALUES = st.one_of(EXTREME_DATES, EXTREME_NUMBERS, SURROGATES, NUL_TEXT, OVERLONG_TEXT)
