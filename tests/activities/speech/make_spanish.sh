#!/usr/bin/env bash
# Regenerates spanish.ogg: Spanish speech, for the test that a transcript the bundled
# English-only model heard with low confidence says so (tests/activities/test_transcribe.py).
# Needs espeak-ng (Debian: apt-get install espeak-ng) and the project's venv (for ffmpeg).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
text="Bienvenidos al video de muestra. Este video tiene cuatro escenas. Cada escena muestra un color diferente. El tiempo hoy es soleado y cálido. Gracias por mirar."
ffmpeg="$(python -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
espeak-ng -v es -s 130 -w "$tmp/speech.wav" "$text"
"$ffmpeg" -hide_banner -loglevel error -y -i "$tmp/speech.wav" -ac 1 -ar 24000 \
  -c:a libopus -b:a 32k -map_metadata -1 -fflags +bitexact "$here/spanish.ogg"
echo "wrote $here/spanish.ogg"
