import pytest

from pinstack_kit.validation import SIMPLE_EMAIL, check_url, is_email, is_link_url, is_url, parse_int

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


class TestLinkUrl:
    """Avatars and media: what every client is handed and fetches."""

    @pytest.mark.parametrize(
        "value",
        [
            "https://picsum.photos/300/300",
            "HTTP://X.IO/A.PNG",
            "http://unknown.unknown",
            "https://x.io:8443/a.png?size=2#top",
            "https://8.8.8.8/a.png",
            "https://[2606:4700::1111]/a.png",
            "http://[::ffff:8.8.8.8]/a.png",
            "https://bücher.example/a.png",
            "https://cdn_1.example.com/a.png",
        ],
    )
    def test_public_web_addresses_pass(self, value: str) -> None:
        assert is_link_url(value)
        assert check_url(value) == value

    @pytest.mark.parametrize(
        "value",
        [
            "javascript:alert(1)",
            "data:image/png;base64,AAAA",
            "mailto:a@b",
            "ftp://x.io/a.png",
            "file:///etc/passwd",
            "//x.io/a.png",
            "http:///a.png",
        ],
    )
    def test_only_http_and_https(self, value: str) -> None:
        assert not is_link_url(value)

    @pytest.mark.parametrize(
        "value", ["http://user:secret@x.io/a.png", "https://user@x.io/a.png", "http://x.io\\@127.0.0.1/a.png"]
    )
    def test_no_credentials(self, value: str) -> None:
        assert not is_link_url(value)

    @pytest.mark.parametrize(
        "value",
        [
            "http://169.254.169.254/latest/meta-data/",  # link-local: the cloud metadata service
            "http://[fe80::1]/",
            "http://[fe80::1%25eth0]/",
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://0.0.0.0/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",  # shared address space (carrier NAT)
            "http://[fc00::1]/",
            "http://[fec0::1]/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "http://192.0.2.1/",  # documentation
        ],
    )
    def test_no_loopback_link_local_or_private_address(self, value: str) -> None:
        assert not is_link_url(value)

    @pytest.mark.parametrize(
        "value",
        [
            "http://127.1/",
            "http://0x7f.0.0.1/",
            "http://0x7f000001/",
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://0251.0376.0251.0376/",  # 169.254.169.254 in octal
            "http://%31%32%37.0.0.1/",
            "http://１２７.０.０.１/",
            "http://127。0。0。1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:7f00:1::]/",
            "http://127.0.0.1\\x.io/",
        ],
    )
    def test_other_spellings_of_such_addresses_too(self, value: str) -> None:
        assert not is_link_url(value)

    @pytest.mark.parametrize(
        "value",
        [
            "http://localhost/",
            "http://LOCALHOST:8080/",
            "http://localhost./",
            "http://api.localhost/",
            "http://%6c%6fcalhost/",
            "http://ｌｏｃａｌｈｏｓｔ/",
            "http://printer.local/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://nas.lan/",
            "http://router.home.arpa/",
            "http://intranet/",  # one label: only a local search domain resolves it
            "http://example.123/",  # ends in a number, yet no address: browsers refuse it
            "http://x..io/",
        ],
    )
    def test_no_local_names(self, value: str) -> None:
        assert not is_link_url(value)

    def test_refusal_is_a_value_error(self) -> None:
        with pytest.raises(ValueError, match="invalid url"):
            check_url("http://localhost/")
