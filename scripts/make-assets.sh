#!/usr/bin/env bash
# Regenerates the bundled sample assets (assets/photo.jpg, assets/photo2.jpg,
# assets/music.mp3) from ffmpeg's synthetic sources, so the repo carries no
# third-party media and the files can be rebuilt byte-for-byte-ish anywhere.
# Usage: bash scripts/make-assets.sh   (needs ffmpeg with libmp3lame)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p assets
ff=(ffmpeg -hide_banner -loglevel error -y)

# A deep-zoom Mandelbrot frame: detailed, colourful, compresses like a photo.
"${ff[@]}" -f lavfi -i "mandelbrot=size=1280x720:start_scale=0.004:start_x=-0.7453:start_y=0.1127:maxiter=400:outer=normalized_iteration_count" \
  -vf "gblur=sigma=1.2" -frames:v 1 -q:v 7 -update 1 assets/photo.jpg

# A sunset: sky gradient, a sun disc and two rows of hills, drawn per pixel.
# Light noise keeps it from looking flat (and from compressing unrealistically well).
sky='if(lt(hypot(X-880,Y-330),70),255, 40+180*Y/H)'
hills='lt(Y, 520+40*sin(X/90)+25*sin(X/37))*lt(Y, 600+20*sin(X/60+1))'
"${ff[@]}" -f lavfi -i "color=c=black:s=1280x720:d=1,format=rgb24" \
  -vf "geq=r='if(${hills}, ${sky}, 30+20*sin(X/50))':g='if(${hills}, if(lt(hypot(X-880,Y-330),70),200, 60+90*Y/H), 50+30*Y/H)':b='if(${hills}, if(lt(hypot(X-880,Y-330),70),90, 140-80*Y/H), 40)',noise=alls=12:allf=t" \
  -frames:v 1 -q:v 5 -update 1 assets/photo2.jpg

# Ten seconds of C – Am – F – G, each chord plucked as a short arpeggio
# (decaying sines), joined and faded so the file loops without a click.
chord() { # $1 $2 $3: note frequencies in Hz
  local env='exp(-3*mod(t,0.625))'
  echo "aevalsrc='0.22*${env}*(sin(2*PI*$1*t)+0.8*sin(2*PI*$2*t)+0.7*sin(2*PI*$3*t)+0.3*sin(2*PI*$1/2*t))|0.22*${env}*(sin(2*PI*$1*t+0.3)+0.8*sin(2*PI*$2*t+0.2)+0.7*sin(2*PI*$3*t+0.1)+0.3*sin(2*PI*$1/2*t))':s=44100:d=2.5"
}
"${ff[@]}" -filter_complex "
  $(chord 261.63 329.63 392.00)[c];
  $(chord 220.00 261.63 329.63)[a];
  $(chord 174.61 220.00 261.63)[f];
  $(chord 196.00 246.94 293.66)[g];
  [c][a][f][g]concat=n=4:v=0:a=1,afade=t=in:d=0.05,afade=t=out:st=9.6:d=0.4[out]" \
  -map '[out]' -c:a libmp3lame -b:a 96k -ac 2 assets/music.mp3

ls -l assets/photo.jpg assets/photo2.jpg assets/music.mp3
