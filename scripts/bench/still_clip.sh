#!/usr/bin/env bash
# Makes the still-camera clip for the motion gate's figures (`[model.motion_gate]`): the
# sample clip's empty walkway (the per-pixel median of every 4th frame of samples/vtest.avi:
# people removed, the parked van and car kept) held for 10 s, then 5 s of the real clip
# (frames 300-349: people walking through), then the empty walkway again for 10 s.
# 768x576, 10 fps, H.264 without B-frames, 250 frames.
#
#   scripts/bench/still_clip.sh [OUT.mp4]   (default: target/bench/vtest-still.mp4)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-target/bench/vtest-still.mp4}
mkdir -p "$(dirname "$out")"
if [[ -s $out ]]; then
  echo "$out"
  exit 0
fi
bg="$(dirname "$out")/vtest-background.png"
if [[ ! -s $bg ]]; then
  # tmedian writes one frame per input; the last one is the median of the last 181 inputs.
  ffmpeg -loglevel error -y -i samples/vtest.avi \
    -vf "select='not(mod(n\,4))',tmedian=radius=90" -update 1 "$bg.tmp.png"
  mv "$bg.tmp.png" "$bg"
fi
ffmpeg -loglevel error -y -loop 1 -framerate 10 -t 10 -i "$bg" -i samples/vtest.avi \
  -filter_complex "[0]format=yuv420p,setsar=1,split[a][c];[1]trim=start_frame=300:end_frame=350,setpts=PTS-STARTPTS,format=yuv420p,setsar=1[b];[a][b][c]concat=n=3:v=1[v]" \
  -map "[v]" -r 10 -c:v libx264 -preset veryfast -bf 0 -g 20 -crf 20 -an "$out.tmp.mp4"
mv "$out.tmp.mp4" "$out"
echo "$out"
