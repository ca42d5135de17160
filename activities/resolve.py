"""Turn a link into the media items it holds: one video, or the entries of a post,
carousel or playlist (videos and images)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError
from yt_dlp.utils import DownloadError, ExtractorError, UnsupportedError

from activities.download import (
    FetchPolicy,
    _causes,
    _http_error,
    _QuietLogger,
    classify_download_error,
    new_downloader,
    too_long,
)
from activities.netguard import check_scheme
from activities.progress import log, reraise_if_cancelled
from models.errors import ErrorKind
from models.pipeline import MediaRef, ResolveInput, ResolveResult

IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "webp", "gif", "bmp", "avif", "heic"})
AUDIO_ONLY_EXTENSIONS = frozenset({"m4a", "mp3", "aac", "opus", "ogg", "wav", "flac"})
#: How image files begin: JPEG, PNG, GIF, then WebP (``RIFF`` and size first), then
#: AVIF and HEIC (an ISO box size first).
IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a")
ISO_IMAGE_BRANDS = frozenset({b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1"})


def looks_like_image(head: bytes, content_type: str) -> bool:
    """Whether a file that begins with ``head``, served as ``content_type``, is an
    image. Pure: no I/O."""
    if content_type.split(";", 1)[0].strip().lower().startswith("image/"):
        return True
    if head.startswith(IMAGE_SIGNATURES):
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    return head[4:8] == b"ftyp" and head[8:12] in ISO_IMAGE_BRANDS


def url_extension(url: str) -> str:
    path = urlsplit(url).path
    return path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""


def file_title(url: str) -> str | None:
    """A link's file name without its extension, as yt-dlp titles a video file's link:
    ``…/Team%20photo.jpg`` is "Team photo"."""
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return (name.rsplit(".", 1)[0] if "." in name else name) or None


def direct_image(url: str) -> MediaRef:
    """A link straight to an image file, as its one item, titled by its file name."""
    return MediaRef(source_url=url, url=url, kind="image", title=file_title(url))


def _is_image_format(fmt: dict[str, Any]) -> bool:
    return (fmt.get("ext") or url_extension(fmt.get("url") or "")) in IMAGE_EXTENSIONS


def _has_video(fmt: dict[str, Any]) -> bool:
    """A format that carries (or may carry) pictures that move."""
    if _is_image_format(fmt) or fmt.get("vcodec") == "none":
        return False
    return (fmt.get("ext") or "") not in AUDIO_ONLY_EXTENSIONS or fmt.get("vcodec") is not None


def _best_media_url(entry: dict[str, Any]) -> str | None:
    """The best direct URL of an entry: a format with video and audio if there is one
    (yt-dlp lists formats worst first), else any format with video, else ``url``."""
    formats = [f for f in entry.get("formats") or [] if f.get("url")]
    with_video = [f for f in formats if _has_video(f)]
    progressive = [f for f in with_video if f.get("acodec") != "none"]
    for candidates in (progressive, with_video):
        if candidates:
            return str(candidates[-1]["url"])
    url = entry.get("url")
    return str(url) if url and url_extension(str(url)) not in IMAGE_EXTENSIONS else None


def _best_image_url(entry: dict[str, Any]) -> str | None:
    url = entry.get("url")
    if url and url_extension(str(url)) in IMAGE_EXTENSIONS:
        return str(url)
    images = [f for f in entry.get("formats") or [] if f.get("url") and _is_image_format(f)]
    images += [t for t in entry.get("thumbnails") or [] if t.get("url")]
    if not images:
        return None

    def size(t: dict[str, Any]) -> tuple[int, int]:
        return ((t.get("width") or 0) * (t.get("height") or 0), t.get("preference") or 0)

    return str(max(enumerate(images), key=lambda p: (size(p[1]), p[0]))[1]["url"])


def _entry_item(entry: dict[str, Any], source_url: str, parent_page: str | None) -> MediaRef | None:
    title = entry.get("title")
    if entry.get("_type") == "url" and entry.get("url"):
        kind = "image" if url_extension(entry["url"]) in IMAGE_EXTENSIONS else "video"
        return MediaRef(source_url=source_url, url=entry["url"], kind=kind, title=title)
    formats = entry.get("formats") or []
    looks_like_video = any(_has_video(f) for f in formats) or (
        not formats
        and entry.get("url")
        and url_extension(str(entry["url"])) not in IMAGE_EXTENSIONS
        and entry.get("vcodec") != "none"
    )
    if looks_like_video:
        page = entry.get("webpage_url")
        # An entry with its own page (a playlist of videos) is downloaded from it, so
        # yt-dlp can merge separate audio and video; entries that share the post's
        # page (a carousel) are downloaded from their own media URL.
        if page and page != parent_page and page != source_url:
            return MediaRef(source_url=source_url, url=str(page), kind="video", title=title)
        media = _best_media_url(entry)
        if media:
            return MediaRef(source_url=source_url, url=media, kind="video", title=title)
    image = _best_image_url(entry)
    if image:
        return MediaRef(source_url=source_url, url=image, kind="image", title=title)
    return None


def _own_title(info: dict[str, Any]) -> Any:
    """``info``'s title. yt-dlp numbers each video it finds in a page's HTML ("A page
    (1)", "A page (2)"), the only one too; that one is given the page's own title."""
    title = info.get("title")
    if (
        info.get("extractor_key") == "HTML5MediaEmbed"
        and isinstance(title, str)
        and title.endswith(" (1)")
        and str(info.get("id", "")).endswith("-1")
    ):
        return title.removesuffix(" (1)")
    return title


def items_from_info(info: dict[str, Any], source_url: str) -> list[MediaRef]:
    """The media items in yt-dlp's info for ``source_url``, in post order. Pure: no I/O.

    A single video stays the submitted link (yt-dlp downloads it again, merging formats);
    a playlist's entries (nested playlists flattened) become one item each; entries with
    only image URLs or thumbnails become image items; entries with neither are skipped.
    """
    if info.get("_type") in ("playlist", "multi_video"):
        items: list[MediaRef] = []
        page = info.get("webpage_url") or source_url
        for entry in info.get("entries") or []:
            if not entry:
                continue
            if entry.get("_type") in ("playlist", "multi_video"):
                items.extend(items_from_info(entry, source_url))
                continue
            item = _entry_item(entry, source_url, page)
            if item is not None:
                items.append(item)
        return items
    ext = info.get("ext") or url_extension(str(info.get("url") or ""))
    formats = info.get("formats") or []
    if ext in IMAGE_EXTENSIONS or (
        formats and not any(_has_video(f) for f in formats) and _best_image_url(info)
    ):
        image = _best_image_url(info) or source_url
        return [MediaRef(source_url=source_url, url=image, kind="image", title=_own_title(info))]
    return [
        MediaRef(
            source_url=source_url,
            url=source_url,
            kind="video",
            title=_own_title(info),
            # yt-dlp's generic extractor titles a link straight to a file by its name.
            title_is_file_name=bool(info.get("direct")),
        )
    ]


#: Tags a page names its video in, best first: Open Graph's, then Twitter's card.
VIDEO_META_TAGS = ("og:video:secure_url", "og:video:url", "og:video", "twitter:player:stream")
#: Tags that give those videos' type.
VIDEO_TYPE_TAGS = ("og:video:type", "twitter:player:stream:content_type")
#: The most of a page read for its tags: they are in its head.
PAGE_READ_BYTES = 1024**2
#: How deep in a page's linked data a video is looked for (a post's ``video``, a
#: ``@graph``'s entries, an item list's elements).
LINKED_DATA_DEPTH = 8


class _PageTags(HTMLParser):
    """A page's ``<meta property|name=… content=…>`` tags, the first of each name, and
    the text of its ``<script type="application/ld+json">`` blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, str] = {}
        self.linked_data: list[str] = []
        self._script: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script":
            kind = (named.get("type") or "").split(";")[0].strip().lower()
            self._script = [] if kind == "application/ld+json" else None
            return
        if tag != "meta":
            return
        name = (named.get("property") or named.get("name") or "").strip().lower()
        content = (named.get("content") or "").strip()
        if name and content:
            self.tags.setdefault(name, content)

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self.linked_data.append("".join(self._script))
            self._script = None


def _video_objects(node: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    """Every schema.org ``VideoObject`` in a page's parsed linked data, in page order."""
    if depth > LINKED_DATA_DEPTH:
        return
    if isinstance(node, list):
        for element in node:
            yield from _video_objects(element, depth + 1)
    elif isinstance(node, dict):
        kinds = node.get("@type")
        if "VideoObject" in (kinds if isinstance(kinds, list) else [kinds]):
            yield node
        for value in node.values():
            if isinstance(value, dict | list):
                yield from _video_objects(value, depth + 1)


def _linked_videos(blocks: list[str], page_url: str, base: str) -> list[MediaRef]:
    """The files a page's ``VideoObject``s name by ``contentUrl``, relative ones taken
    from ``base``; one item each, in page order. ``embedUrl`` names a player page, not
    a file, and is left alone."""
    items: list[MediaRef] = []
    for block in blocks:
        try:
            data = json.loads(block)
        except ValueError:
            continue  # a page's broken block hides nothing the others show
        for video in _video_objects(data):
            content = video.get("contentUrl")
            if isinstance(content, list):
                content = next((c for c in content if isinstance(c, str)), None)
            if not isinstance(content, str) or not content.strip():
                continue
            link = urljoin(base, content.strip())
            if urlsplit(link).scheme.lower() not in ("http", "https"):
                continue
            if any(item.url == link for item in items):
                continue
            name = video.get("name")
            title = name.strip() if isinstance(name, str) and name.strip() else None
            items.append(MediaRef(source_url=page_url, url=link, kind="video", title=title))
    return items


def page_videos(html: str, page_url: str, base_url: str | None = None) -> list[MediaRef]:
    """The video a page names in its Open Graph or Twitter card tags, where their type
    says it is a video (``og:video:type`` ``video/mp4``); failing that, the videos its
    schema.org linked data (JSON-LD) names by ``contentUrl``: items of ``page_url``.
    A relative link is taken from ``base_url`` (where redirects ended), else from it.

    yt-dlp's generic extractor takes a tag's link only when its path ends in a file
    extension, and a post's CDN link often has none (``…/v/8f3a2c``); it takes a
    ``contentUrl`` only when it is absolute. A tag without a video type is left alone:
    ``og:video`` also names embeddable players (HTML, Flash). Pure: no I/O."""
    parser = _PageTags()
    parser.feed(html)
    tags = parser.tags
    base = base_url or page_url
    if any(tags.get(tag, "").lower().startswith("video/") for tag in VIDEO_TYPE_TAGS):
        for tag in VIDEO_META_TAGS:
            link = urljoin(base, tags.get(tag, ""))
            if tag in tags and urlsplit(link).scheme.lower() in ("http", "https"):
                title = tags.get("og:title") or tags.get("twitter:title")
                return [MediaRef(source_url=page_url, url=link, kind="video", title=title)]
    return _linked_videos(parser.linked_data, page_url, base)


class ResolveActivities:
    def __init__(self, policy: FetchPolicy) -> None:
        self._policy = policy

    def _is_image(self, url: str) -> bool:
        """Whether ``url`` serves an image, by its content type or its first bytes
        (network: one request, for the first 64 bytes). Fails as the download would."""
        try:
            with (
                self._policy.guard(),
                httpx.stream(
                    "GET",
                    url,
                    headers={"Range": "bytes=0-63"},
                    follow_redirects=True,
                    timeout=self._policy.socket_timeout_s,
                ) as response,
            ):
                if response.status_code == 416:  # an empty file: the download says so
                    return False
                if response.status_code >= 400:
                    raise _http_error(url, response.status_code, "resolve")
                # A server that ignores the range sends the whole file: read one chunk.
                head = next(response.iter_bytes(64), b"")
                return looks_like_image(head, response.headers.get("content-type", ""))
        except (httpx.HTTPError, OSError) as exc:
            reraise_if_cancelled(exc)
            raise classify_download_error(
                url, exc, stage="resolve", timeout_s=self._policy.socket_timeout_s
            ) from None

    def _page_videos(self, url: str) -> list[MediaRef]:
        """``page_videos`` of the page at ``url`` (network: one request, for at most
        ``PAGE_READ_BYTES`` of an HTML page). Empty where it cannot be read or names none."""
        try:
            with (
                self._policy.guard(),
                httpx.stream(
                    "GET", url, follow_redirects=True, timeout=self._policy.socket_timeout_s
                ) as response,
            ):
                kind = response.headers.get("content-type", "")
                if response.status_code >= 400 or "html" not in kind.lower():
                    return []
                head = bytearray()
                for chunk in response.iter_bytes():
                    head += chunk
                    if len(head) >= PAGE_READ_BYTES:
                        break
                text = bytes(head).decode(response.encoding or "utf-8", errors="replace")
                return page_videos(text, url, str(response.url))
        except (httpx.HTTPError, OSError) as exc:
            reraise_if_cancelled(exc)
            return []

    @activity.defn(name="resolve_link")
    def resolve_link(self, input: ResolveInput) -> ResolveResult:
        """Ask yt-dlp what the link holds, without downloading media (network)."""
        check_scheme(input.url, "resolve")
        if url_extension(input.url) in IMAGE_EXTENSIONS:
            return ResolveResult(items=[direct_image(input.url)])
        options = {
            "logger": _QuietLogger(),
            "quiet": True,
            "no_warnings": True,
            "noprogress": True,
            "cachedir": False,
            "socket_timeout": self._policy.socket_timeout_s,
            "playlistend": input.max_items + 1,
            "extract_flat": "in_playlist",
        }
        try:
            with self._policy.guard(), new_downloader(options) as ydl:
                info = ydl.extract_info(input.url, download=False)
        except (DownloadError, ExtractorError, OSError) as exc:
            reraise_if_cancelled(exc)
            error = classify_download_error(
                input.url, exc, stage="resolve", timeout_s=self._policy.socket_timeout_s
            )
            found = []
            if any(isinstance(cause, UnsupportedError) for cause in _causes(exc)):
                found = self._page_videos(input.url)
            if not found:
                raise error from None
            dropped = max(0, len(found) - input.max_items)
            log().info(
                "resolve.page_videos",
                url=input.url,
                videos=[item.url for item in found[: input.max_items]],
                dropped=dropped,
            )
            return ResolveResult(
                items=found[: input.max_items], extractor="page tags", dropped=dropped
            )
        items = [
            item
            for item in items_from_info(info or {}, input.url)
            if urlsplit(item.url).scheme.lower() in ("http", "https")
        ]
        # yt-dlp takes any direct link it cannot type for a video; a picture behind a
        # link with no file extension (image CDNs: ``.../photo-123?w=800``) would then run
        # the video stages on one frame.
        if (
            info
            and info.get("direct")
            and info.get("ext") == "unknown_video"
            and self._is_image(input.url)
        ):
            items = [direct_image(input.url)]
        if info and info.get("_type") not in ("playlist", "multi_video"):
            duration = info.get("duration")
            if duration and duration > self._policy.max_duration_s:
                raise too_long(input.url, duration, self._policy.max_duration_s, "resolve")
        if not items:
            raise ApplicationError(
                f"resolve: {input.url} holds no video or image; link a post or a video",
                type=ErrorKind.NO_MEDIA,
                non_retryable=True,
            )
        dropped = max(0, len(items) - input.max_items)
        log().info(
            "resolve.done",
            url=input.url,
            items=len(items),
            dropped=dropped,
            extractor=(info or {}).get("extractor_key"),
        )
        return ResolveResult(
            items=items[: input.max_items],
            extractor=(info or {}).get("extractor_key") or (info or {}).get("extractor"),
            dropped=dropped,
        )
