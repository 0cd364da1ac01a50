import pytest

from pinstack_kit.validation import SIMPLE_EMAIL, is_email, is_url, parse_int

pytestmark = pytest.mark.unit


class TestParseInt:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [("1", 1), ("+7", 7), ("-3", -3), ("007", 7), ("9223372036854775807", 2**63 - 1)],
    )
    def test_accepts_go_integers(self, raw: str, expected: int) -> None:
        assert parse_int(raw) == expected

    @pytest.mark.parametrize("raw", ["", " 1", "1 ", "1_000", "1.0", "1e3", "abc", "٣", "9223372036854775808", "0x10"])
    def test_rejects_what_strconv_rejects(self, raw: str) -> None:
        assert parse_int(raw) is None

    def test_int32_range(self) -> None:
        assert parse_int("2147483647", bits=32) == 2**31 - 1
        assert parse_int("2147483648", bits=32) is None


class TestEmail:
    @pytest.mark.parametrize("value", ["a@b.co", "first.last+tag@example.com", "x@sub.domain.org", '"quoted"@x.io'])
    def test_valid(self, value: str) -> None:
        assert is_email(value)

    @pytest.mark.parametrize("value", ["", "plain", "a@b", "a@b.1c", "a@@b.co", ".a@b.co", "a b@c.de"])
    def test_invalid(self, value: str) -> None:
        assert not is_email(value)

    def test_simple_pattern_needs_two_letter_tld(self) -> None:
        assert SIMPLE_EMAIL.fullmatch("a@b.co")
        assert not SIMPLE_EMAIL.fullmatch("a@b.c")
        assert not SIMPLE_EMAIL.fullmatch(" ")


class TestUrl:
    @pytest.mark.parametrize(
        "value", ["https://x.y/a", "http://localhost:8080", "mailto:a@b", "HTTPS://PICSUM.PHOTOS/300"]
    )
    def test_valid(self, value: str) -> None:
        assert is_url(value)

    @pytest.mark.parametrize("value", ["", "not-a-url", "/relative", "http://", "https://x.y/a b", "http://x:99999"])
    def test_invalid(self, value: str) -> None:
        assert not is_url(value)
