#!/usr/bin/env bash
# Makes the HD camera clip for `sightline bench --clip`: the sample clip (samples/vtest.avi,
# 768x576, 10 fps) played 2.5x faster and scaled to 1920x1080 at 25 fps, so that every frame
# is a new picture (no duplicated frames for the encoder to skip), H.264 High profile without
# B-frames at 6 Mbit/s, a keyframe every 2 s — what an IP camera sends. 31.8 s, 795 frames.
#
#   scripts/bench/hd_clip.sh [OUT.mp4]      (default: target/bench/vtest-1080p25.mp4)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-target/bench/vtest-1080p25.mp4}
mkdir -p "$(dirname "$out")"
if [[ -s $out ]]; then
  echo "$out"
  exit 0
fi
ffmpeg -loglevel error -y -i samples/vtest.avi \
  -vf "setpts=PTS/2.5,scale=1920:1080:flags=bicubic" -r 25 \
  -c:v libx264 -preset veryfast -profile:v high -bf 0 -g 50 -b:v 6M -maxrate 6M -bufsize 12M \
  -pix_fmt yuv420p -an "$out.tmp.mp4"
mv "$out.tmp.mp4" "$out"
echo "$out"
