"""Scene-detector variants on the evaluation set's cuts: how Reelscope's default
was chosen.

    .venv/bin/python -m eval.detectors [--seed 7] [--long]

Each variant runs PySceneDetect on the same rendered clips, read as the scene pass reads
them (PyAV, at PySceneDetect's auto-downscale width), and is
scored like ``eval.run`` (hard cuts ±1 frame, soft transitions ignored, every cut on a
trap clip a false cut).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from scenedetect import AdaptiveDetector, ContentDetector, SceneDetector, SceneManager

from activities.scenes import SETTLE_SECONDS, PlanarStream, TransientFilter
from eval.clips import build_set, render, truth_of
from eval.metrics import CutScore, score_cuts
from eval.run import DEFAULT_CACHE
from eval.systems import SystemOut
from reelscope.settings import Settings

VARIANTS: dict[str, tuple[Callable[[], SceneDetector], bool]] = {
    "ContentDetector(27), PySceneDetect's default": (lambda: ContentDetector(), False),
    "ContentDetector(20)": (lambda: ContentDetector(threshold=20), False),
    "AdaptiveDetector()": (lambda: AdaptiveDetector(), False),
    "ContentDetector(27) + transient filter": (lambda: ContentDetector(), True),
    "AdaptiveDetector() + transient filter (Reelscope)": (lambda: AdaptiveDetector(), True),
}


def cuts_of(media: Path, make: Callable[[], SceneDetector], transient_filter: bool) -> list[float]:
    # The scene pass's own reader, so the variants see the frames Reelscope sees.
    video = PlanarStream(str(media), Settings().scene_skip_b_frame_deblocking)
    fps = float(video.frame_rate)
    manager = SceneManager()
    manager.auto_downscale = True
    if transient_filter:
        wrapper = TransientFilter(make(), settle_frames=max(2, round(SETTLE_SECONDS * fps)))
        manager.add_detector(wrapper)
        manager.detect_scenes(video)
        wrapper.finish()
        return [frame / fps for frame in sorted(wrapper.cuts)]
    manager.add_detector(make())
    manager.detect_scenes(video)
    return [start.seconds for start, _ in manager.get_scene_list()[1:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--long", action="store_true", help="Include the 5-minute clip.")
    args = parser.parse_args()
    import imageio_ffmpeg

    work = Path(tempfile.mkdtemp(prefix="reelscope-detectors-"))
    scores = {name: CutScore() for name in VARIANTS}
    try:
        for spec in build_set(args.seed, long_clip=args.long):
            media = render(spec, work, args.seed, DEFAULT_CACHE, imageio_ffmpeg.get_ffmpeg_exe())
            truth = truth_of(spec)
            for name, (make, filtered) in VARIANTS.items():
                out = SystemOut(cuts_of(media, make, filtered), [], [], [], 0.0)
                scores[name].add(score_cuts(truth, out))
            media.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| detector | precision | recall | F1 | false cuts on traps |")
    print("| --- | --- | --- | --- | --- |")
    for name, s in scores.items():
        print(f"| {name} | {s.precision:.3f} | {s.recall:.3f} | {s.f1:.3f} | {s.trap_false_cuts} |")


if __name__ == "__main__":
    main()
