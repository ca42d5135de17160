from __future__ import annotations

import pytest

from models.links import hide_passwords


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("http://ann:s3cret@host/a.mp4", "http://ann:***@host/a.mp4"),
        # A user name alone is often an access token.
        ("HTTPS://ghp_token@host:8080/x?y=1", "HTTPS://***@host:8080/x?y=1"),
        ("http://:s3cret@[::1]:80/a", "http://:***@[::1]:80/a"),
        (
            "download: the server answered 404 for http://a:b@h/x.mp4 (from ftp://u:p@q/)",
            "download: the server answered 404 for http://a:***@h/x.mp4 (from ftp://u:***@q/)",
        ),
        # Nothing to hide: an @ in the path or the query, a port, an e-mail address.
        (
            "http://host/@user/a.mp4?by=ann@example.com",
            "http://host/@user/a.mp4?by=ann@example.com",
        ),
        ("http://host:8080/a.mp4", "http://host:8080/a.mp4"),
        ("write to ann@example.com", "write to ann@example.com"),
    ],
)
def test_passwords_in_links_are_hidden_and_nothing_else_changes(text: str, shown: str) -> None:
    assert hide_passwords(text) == shown
