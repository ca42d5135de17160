"""``items_from_info`` on recorded info dicts shaped like real extractor output, and
``resolve_link`` against the local media server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.download import FetchPolicy
from activities.resolve import (
    ResolveActivities,
    items_from_info,
    looks_like_image,
    page_videos,
)
from models.pipeline import ResolveInput
from tests.activities.conftest import RecordingEnvironment
from tests.conftest import SAMPLE_NAME

INFO = Path(__file__).parent / "info"


def recorded(name: str) -> dict:
    return json.loads((INFO / name).read_text())


def test_instagram_carousel_gives_videos_and_images_in_post_order() -> None:
    post = "https://www.instagram.com/p/C7xYz12AbCd/"
    items = items_from_info(recorded("instagram_carousel.json"), post)
    assert [(i.kind, i.url) for i in items] == [
        # The progressive format (video and audio in one file) beats video-only DASH.
        ("video", "https://cdn.example/v/3301_720.mp4"),
        # Images: the largest thumbnail.
        ("image", "https://cdn.example/i/3302_1080.jpg?stp=dst-jpg"),
        # Only video-only DASH: the best video format.
        ("video", "https://cdn.example/v/3303_480v.mp4"),
        # An image URL of its own wins over thumbnails.
        ("image", "https://cdn.example/i/3304.webp"),
    ]
    assert all(i.source_url == post for i in items)


def test_playlist_entries_with_their_own_pages_are_downloaded_from_them() -> None:
    items = items_from_info(recorded("youtube_playlist_flat.json"), "https://yt/playlist")
    assert [(i.kind, i.url, i.title) for i in items] == [
        ("video", "https://www.youtube.com/watch?v=aaaaaaaaaaa", "Clip one"),
        ("video", "https://www.youtube.com/watch?v=bbbbbbbbbbb", "Clip two"),
        ("video", "https://www.youtube.com/watch?v=ccccccccccc", "Clip three"),
    ]


def test_generic_page_with_two_videos() -> None:
    items = items_from_info(recorded("generic_html5_page.json"), "http://media.example/post.html")
    assert [(i.kind, i.url) for i in items] == [
        ("video", "http://media.example/a.mp4"),
        ("video", "http://media.example/b.mp4"),
    ]


def test_single_video_and_direct_image_and_empty_post() -> None:
    video = items_from_info(
        {
            "id": "a",
            "url": "http://x/a.mp4",
            "ext": "mp4",
            "formats": [{"url": "http://x/a.mp4", "ext": "mp4"}],
        },
        "http://x/a",
    )
    assert [(i.kind, i.url) for i in video] == [("video", "http://x/a")]
    image = items_from_info({"id": "c", "url": "http://x/c.jpg", "ext": "jpg"}, "http://x/c.jpg")
    assert [(i.kind, i.url) for i in image] == [("image", "http://x/c.jpg")]
    text_only = {"_type": "playlist", "entries": [{"id": "1", "title": "just words"}]}
    assert items_from_info(text_only, "http://x/post") == []
    nested = {"_type": "playlist", "entries": [recorded("generic_html5_page.json")]}
    assert len(items_from_info(nested, "http://x/p")) == 2


def test_a_pages_only_video_has_the_pages_title(media_url: str) -> None:
    """yt-dlp titles the videos it finds in a page's HTML "A page (1)", "A page (2)",
    and so its only one too. A post's clips keep their numbers."""
    activity = ResolveActivities(FetchPolicy(socket_timeout_s=10, allow_private=True)).resolve_link
    one = RecordingEnvironment().run(activity, ResolveInput(url=f"{media_url}/one.html"))
    assert [(i.kind, i.title) for i in one.items] == [("video", "A page with one clip")]
    two = RecordingEnvironment().run(activity, ResolveInput(url=f"{media_url}/post.html"))
    assert [i.title for i in two.items] == [
        "A post with two clips (1)",
        "A post with two clips (2)",
    ]


def test_a_direct_links_title_is_marked_as_its_file_name(media_url: str) -> None:
    """yt-dlp titles a link straight to a file by its name; a page's title is its own.
    The probe puts a file's own title tag before a name (tests of the probe)."""
    activity = ResolveActivities(FetchPolicy(socket_timeout_s=10, allow_private=True)).resolve_link
    direct = RecordingEnvironment().run(activity, ResolveInput(url=f"{media_url}/{SAMPLE_NAME}"))
    assert [(i.title, i.title_is_file_name) for i in direct.items] == [
        (SAMPLE_NAME.rsplit(".", 1)[0], True)
    ]
    page = RecordingEnvironment().run(activity, ResolveInput(url=f"{media_url}/one.html"))
    assert [(i.title, i.title_is_file_name) for i in page.items] == [
        ("A page with one clip", False)
    ]


def test_resolve_link_reads_a_local_post_and_caps_it(media_url: str) -> None:
    activity = ResolveActivities(FetchPolicy(socket_timeout_s=10, allow_private=True)).resolve_link
    result = RecordingEnvironment().run(activity, ResolveInput(url=f"{media_url}/post.html"))
    assert [(i.kind, i.url.rsplit("/", 1)[-1]) for i in result.items] == [
        ("video", SAMPLE_NAME),
        ("video", "silent.mp4"),
    ]
    capped = RecordingEnvironment().run(
        activity, ResolveInput(url=f"{media_url}/post.html", max_items=1)
    )
    assert len(capped.items) == 1 and capped.dropped == 1


def test_a_link_with_no_extension_is_typed_by_what_it_serves(media_url: str) -> None:
    """yt-dlp calls any direct link it cannot type a video; both files are served as
    application/octet-stream."""
    activity = ResolveActivities(FetchPolicy(socket_timeout_s=10, allow_private=True)).resolve_link
    for name, kind in [("photo", "image"), ("clip", "video")]:
        result = RecordingEnvironment().run(activity, ResolveInput(url=f"{media_url}/{name}"))
        assert [(i.kind, i.url) for i in result.items] == [(kind, f"{media_url}/{name}")], name
    # The server fails the second and third requests: yt-dlp's goes through, the look at
    # the first bytes does not, and the activity is retried.
    flaky = f"{media_url}/flaky/resolve-photo/photo"
    with pytest.raises(ApplicationError) as info:
        RecordingEnvironment().run(activity, ResolveInput(url=flaky))
    assert info.value.type == "DownloadFailed" and not info.value.non_retryable
    assert "503" in info.value.message
    with pytest.raises(ApplicationError):
        RecordingEnvironment().run(activity, ResolveInput(url=flaky))  # yt-dlp's 503
    result = RecordingEnvironment().run(activity, ResolveInput(url=flaky))
    assert [i.kind for i in result.items] == ["image"]


@pytest.mark.parametrize(
    ("head", "content_type", "image"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "application/octet-stream", True),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "", True),
        (b"GIF89a\x01\x00", "", True),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "", True),
        (b"\x00\x00\x00\x1cftypavif\x00\x00", "", True),
        (b"\x00\x00\x00\x18ftypheic\x00\x00", "", True),
        (b"\x00\x00\x00\x20ftypisom\x00\x00", "", False),
        (b"RIFF\x24\x00\x00\x00AVI LIST", "", False),
        (b"\x1aE\xdf\xa3", "application/octet-stream", False),
        (b"<html>", "image/png; charset=binary", True),
        (b"", "", False),
    ],
)
def test_looks_like_image(head: bytes, content_type: str, image: bool) -> None:
    assert looks_like_image(head, content_type) is image


def test_a_post_naming_its_video_only_in_its_tags_is_read_from_them(media_url: str) -> None:
    """yt-dlp's generic extractor passes over an ``og:video`` link with no file
    extension; the page's tags say it is a video, and it is one."""
    activity = ResolveActivities(FetchPolicy(socket_timeout_s=10, allow_private=True)).resolve_link
    result = RecordingEnvironment().run(activity, ResolveInput(url=f"{media_url}/shared.html"))
    assert [(i.kind, i.url, i.title) for i in result.items] == [
        ("video", f"{media_url}/v/8f3a2c", "A shared clip")
    ]
    assert result.items[0].source_url == f"{media_url}/shared.html"


def meta(*pairs: tuple[str, str]) -> str:
    return (
        "<html><head>"
        + "".join(f'<meta property="{name}" content="{content}">' for name, content in pairs)
        + "</head><body></body></html>"
    )


@pytest.mark.parametrize(
    ("html", "found"),
    [
        (meta(("og:video", "/v/8f3a"), ("og:video:type", "video/mp4")), "https://p.example/v/8f3a"),
        # The secure link first; a second og:video tag (a smaller rendition) is not taken.
        (
            meta(
                ("og:video", "http://cdn.example/a"),
                ("og:video", "http://cdn.example/small"),
                ("og:video:secure_url", "https://cdn.example/a"),
                ("og:video:type", "video/webm"),
            ),
            "https://cdn.example/a",
        ),
        (
            '<meta name="twitter:player:stream" content="https://cdn.example/t">'
            '<meta name="twitter:player:stream:content_type" content="video/mp4; codecs=avc1">',
            "https://cdn.example/t",
        ),
        # A player page, Flash, no type, or no http link: nothing a download could read.
        (meta(("og:video", "https://p.example/embed/1"), ("og:video:type", "text/html")), None),
        (
            meta(
                ("og:video", "https://p.example/p.swf"),
                ("og:video:type", "application/x-shockwave-flash"),
            ),
            None,
        ),
        (meta(("og:video", "https://cdn.example/a")), None),
        (meta(("og:video", "javascript:alert(1)"), ("og:video:type", "video/mp4")), None),
        ("<p>no tags</p>", None),
    ],
)
def test_page_tags_name_a_video_only_where_their_type_says_so(html: str, found: str | None) -> None:
    items = page_videos(html, "https://p.example/post/1")
    assert [item.url for item in items] == ([found] if found else [])
    for item in items:
        assert item.kind == "video" and item.source_url == "https://p.example/post/1"


def linked_data(*blocks: object) -> str:
    return (
        "<html><head>"
        + "".join(
            f'<script type="application/ld+json">{b if isinstance(b, str) else json.dumps(b)}'
            "</script>"
            for b in blocks
        )
        + "</head><body></body></html>"
    )


VIDEO_A = {"@type": "VideoObject", "name": "First", "contentUrl": "/media/a.mp4"}
VIDEO_B = {"@type": ["VideoObject", "CreativeWork"], "contentUrl": "b.webm"}


@pytest.mark.parametrize(
    ("html", "found"),
    [
        # Relative links, from the page's own place.
        (linked_data(VIDEO_A), ["https://p.example/media/a.mp4"]),
        (linked_data(VIDEO_B), ["https://p.example/post/b.webm"]),
        # A post's videos, nested, in page order; each link once.
        (
            linked_data({"@type": "SocialMediaPosting", "video": [VIDEO_A, VIDEO_B, VIDEO_A]}),
            ["https://p.example/media/a.mp4", "https://p.example/post/b.webm"],
        ),
        (
            linked_data({"@graph": [{"@type": "WebPage"}, {"mainEntity": VIDEO_B}]}),
            ["https://p.example/post/b.webm"],
        ),
        # A broken block hides nothing the next one shows.
        (linked_data('{"@type": "VideoObject", ', VIDEO_A), ["https://p.example/media/a.mp4"]),
        # A player page, no link, a link no download could read, another type: none.
        (linked_data({"@type": "VideoObject", "embedUrl": "https://p.example/embed/1"}), []),
        (linked_data({"@type": "VideoObject", "contentUrl": "javascript:alert(1)"}), []),
        (linked_data({"@type": "ImageObject", "contentUrl": "/photo.jpg"}), []),
        # A video the page's typed tags name comes first, and alone.
        (
            meta(("og:video", "/v/8f3a"), ("og:video:type", "video/mp4")) + linked_data(VIDEO_A),
            ["https://p.example/v/8f3a"],
        ),
    ],
)
def test_linked_data_names_the_videos_of_a_post(html: str, found: list[str]) -> None:
    items = page_videos(html, "https://p.example/post/1")
    assert [item.url for item in items] == found
    assert all(item.kind == "video" for item in items)


def test_linked_data_titles_each_video_by_its_name() -> None:
    items = page_videos(linked_data([VIDEO_A, VIDEO_B]), "https://p.example/post/1")
    assert [item.title for item in items] == ["First", None]


def test_a_post_naming_its_videos_only_in_linked_data_resolves_to_them(media_url: str) -> None:
    """yt-dlp's generic extractor finds no video on the page: its linked data names two,
    by links relative to the page."""
    activity = ResolveActivities(FetchPolicy(socket_timeout_s=10, allow_private=True)).resolve_link
    result = RecordingEnvironment().run(activity, ResolveInput(url=f"{media_url}/linked.html"))
    assert [(i.kind, i.url, i.title) for i in result.items] == [
        ("video", f"{media_url}/silent.mp4", "Linked clip one"),
        ("video", f"{media_url}/v/8f3a2c", "Linked clip two"),
    ]
    assert result.dropped == 0
    one = RecordingEnvironment().run(
        activity, ResolveInput(url=f"{media_url}/linked.html", max_items=1)
    )
    assert [i.url for i in one.items] == [f"{media_url}/silent.mp4"] and one.dropped == 1


def test_resolve_link_errors_are_typed(media_url: str) -> None:
    activity = ResolveActivities(FetchPolicy(socket_timeout_s=10, allow_private=True)).resolve_link
    with pytest.raises(ApplicationError) as info:
        RecordingEnvironment().run(activity, ResolveInput(url=f"{media_url}/page.html"))
    assert info.value.type == "UnsupportedUrl" and info.value.message.startswith("resolve:")
