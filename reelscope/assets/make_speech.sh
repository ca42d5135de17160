#!/usr/bin/env bash
# Regenerates speech.ogg, the spoken track of the bundled sample video.
# Needs espeak-ng (Debian: apt-get install espeak-ng) and the project's venv (for ffmpeg).
# The words must match SPEECH_TEXT in reelscope/sample.py.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
text="Welcome to the sample video. This video has four scenes. Each scene shows a different color. The weather today is sunny and warm. Thank you for watching."
ffmpeg="$(python -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
espeak-ng -v en-us -s 130 -g 4 -w "$tmp/speech.wav" "$text"
"$ffmpeg" -hide_banner -loglevel error -y -i "$tmp/speech.wav" -ac 1 -ar 24000 \
  -c:a libopus -b:a 32k "$here/speech.ogg"
echo "wrote $here/speech.ogg"
