// The soundtrack, rendered once for the whole timeline (no pops at scene
// borders): the music trimmed, looped to fill the video, delayed to its start,
// faded, then brought to −16 LUFS integrated loudness (EBU R128) by a gain
// measured in a pass of its own, with a limiter for the peaks; or silence.
// The track always spans the video exactly: padded with silence, then cut.
// Kept clip sound (worker/planner/clip.ts) is placed at its scene, mixed with
// the music, and the music ducked under it by a sidechain compressor keyed on
// the clip sound; the whole mix is then measured and brought to the target.
import type { RenderSpec } from '../../engine/spec.js';
import type { ClipAudio } from './clip.js';
import { RenderError } from '../../engine/errors.js';
import { Graph, WHITELIST } from './graph.js';
import type { FfmpegInput, LoudnessPass, PlanAssets } from './types.js';

export const TARGET_LUFS = -16;
/** Gains beyond these are not applied: a near-silent file is not turned into amplified noise. */
const MAX_GAIN_DB = 30;
const MIN_GAIN_DB = -40;
const RATE = 48000;
const NORMALIZE = `aformat=sample_fmts=fltp:sample_rates=${RATE}:channel_layouts=stereo`;

type Music = { input: FfmpegInput; chain: string };

/** The music's input and its chain up to (not including) the loudness gain. */
function music(spec: RenderSpec, assets: PlanAssets, seconds: number): Music | undefined {
  const audio = spec.audio;
  if (!audio) return undefined;
  const asset = assets.get(audio.src);
  if (!asset) throw new Error(`asset ${audio.src} was not fetched before rendering`);
  if (asset.kind !== 'audio') throw new RenderError('asset_invalid', `${audio.src} is not audio`, false);
  const start = Math.min(audio.start ?? 0, seconds);
  const plays = seconds - start; // how long the music sounds
  const steps: string[] = [NORMALIZE];
  let options: string[];
  if (!audio.trim) {
    // The whole file, looped by the demuxer: nothing held in memory.
    options = [...WHITELIST, '-f', asset.format, '-stream_loop', '-1', '-t', String(plays)];
  } else {
    options = [...WHITELIST, '-f', asset.format];
    const end = Math.min(audio.trim.to ?? Infinity, asset.seconds || Infinity);
    steps.push(`atrim=start=${audio.trim.from}${Number.isFinite(end) ? `:end=${end}` : ''}`, `asetpts=N/SR/TB`);
    // A part shorter than the time it plays loops; aloop holds that part (at most the video's length).
    if (Number.isFinite(end) && end - audio.trim.from < plays && end > audio.trim.from)
      steps.push(`aloop=loop=-1:size=${Math.round((end - audio.trim.from) * RATE)}`);
  }
  steps.push(`atrim=duration=${plays}`);
  if (start > 0) steps.push(`adelay=delays=${Math.round(start * 1000)}:all=1`);
  // apad: silence after the music's last sample, so the track always spans
  // the video (and exists at all when the file decodes to nothing). atrim ends it.
  steps.push(`apad=packet_size=1024`, `atrim=duration=${seconds}`);
  if (audio.fadeIn) steps.push(`afade=t=in:st=${start}:d=${Math.min(audio.fadeIn, plays)}`);
  const fadeOut = Math.min(audio.fadeOut ?? Math.min(1, seconds / 4), plays);
  if (fadeOut > 0) steps.push(`afade=t=out:st=${seconds - fadeOut}:d=${fadeOut}`);
  return { input: { path: asset.path, ref: audio.src, options }, chain: steps.join(',') };
}

/**
 * Ducking: where the clip's sound is above -40 dBFS the music is compressed
 * 20:1 against it (measured: 11.7 dB lower under a tone at -27 dBFS RMS,
 * more under louder sound), back within a few hundred ms after it stops.
 */
export const DUCK = 'sidechaincompress=threshold=0.01:ratio=20:attack=20:release=400';

/** One kept clip's sound, from `label`, placed at its scene on a track as long as the video. */
function clipChain(c: ClipAudio, seconds: number): string {
  const steps = [NORMALIZE, 'asetpts=N/SR/TB'];
  if (c.loop && c.segment < c.plays) steps.push(`aloop=loop=-1:size=${Math.max(1, Math.round(c.segment * RATE))}`);
  steps.push(`atrim=duration=${+c.plays.toFixed(6)}`);
  if (c.start > 0) steps.push(`adelay=delays=${Math.round(c.start * 1000)}:all=1`);
  steps.push('apad=packet_size=1024', `atrim=duration=${seconds}`);
  return steps.join(',');
}

/**
 * Music and kept clip sound mixed, before the loudness gain: the clips' sound
 * summed, the music (at its volume, unless measuring) ducked under it. Returns the mix's label.
 */
function mixWithClips(g: Graph, musicLabel: string | undefined, clips: string[], musicVolume: number): string {
  let voices = clips[0]!;
  if (clips.length > 1) {
    voices = g.label('cv');
    g.add(`${clips.join('')}amix=inputs=${clips.length}:normalize=0:duration=longest${voices}`);
  }
  if (!musicLabel) return voices;
  const [key, heard] = [g.label('cs'), g.label('cs')];
  g.add(`${voices}asplit=2${key}${heard}`);
  const leveled = g.label('mv');
  const ducked = g.label('dk');
  const mix = g.label('mx');
  g.add(`${musicLabel}${musicVolume !== 1 ? `volume=${musicVolume},` : ''}asetpts=N/SR/TB${leveled}`);
  g.add(`${leveled}${key}${DUCK}${ducked}`);
  g.add(`${ducked}${heard}amix=inputs=2:normalize=0:duration=first${mix}`);
  return mix;
}

/** The music's and kept clips' inputs and chains, written into `g` up to the mix (before the gain). */
function addMix(spec: RenderSpec, assets: PlanAssets, seconds: number, clips: ClipAudio[], g: Graph, forMeasure: boolean): string | undefined {
  const m = music(spec, assets, seconds);
  if (!m && clips.length === 0) return undefined;
  let musicLabel: string | undefined;
  if (m) {
    const input = forMeasure ? { ...m.input, options: playOnce(m.input.options) } : m.input;
    musicLabel = g.label('mu');
    g.add(`${g.input(input, 'a')}${m.chain}${musicLabel}`);
  }
  if (clips.length === 0) return musicLabel;
  const tracks = clips.map((c) => {
    const from = !forMeasure && c.mainLabel ? c.mainLabel : g.input(c.input, 'a');
    const out = g.label('ca');
    g.add(`${from}${clipChain(c, seconds)}${out}`);
    return out;
  });
  return mixWithClips(g, musicLabel, tracks, forMeasure ? 1 : (spec.audio?.volume ?? 1));
}

// One play of the file, not looped: a file that decodes to no sample would
// otherwise loop forever in a pass (the main run stops with the video), and
// the loudness of a loop is the loudness of the file.
const playOnce = (options: string[]) => options.filter((o, i, all) => o !== '-stream_loop' && all[i - 1] !== '-stream_loop');

/** The pass that measures the music as it will sound, before the gain; undefined without music. */
export function loudnessPass(spec: RenderSpec, assets: PlanAssets, seconds: number, clips: ClipAudio[] = []): LoudnessPass | undefined {
  if (clips.length > 0) {
    const g = new Graph();
    const mix = addMix(spec, assets, seconds, clips, g, true)!;
    g.add(`${mix}ebur128=framelog=verbose[out]`);
    return { inputs: g.inputs, filter: g.toString(), outputOptions: ['-hide_banner', '-nostats', '-loglevel', 'info', '-map', '[out]', '-f', 'null'] };
  }
  const m = music(spec, assets, seconds);
  if (!m) return undefined;
  // One play of the file, not looped: a file that decodes to no sample would
  // otherwise loop forever here (the main run stops with the video), and the
  // loudness of a loop is the loudness of the file.
  const once = playOnce(m.input.options);
  return {
    inputs: [{ ...m.input, options: once }],
    filter: `[0:a]${m.chain},ebur128=framelog=verbose[out]`,
    outputOptions: ['-hide_banner', '-nostats', '-loglevel', 'info', '-map', '[out]', '-f', 'null'],
  };
}

/** ebur128's summary: the last `I: … LUFS` it printed; -Infinity for silence. */
export function parseLoudness(stderr: string): number | undefined {
  const all = [...stderr.matchAll(/I:\s+(-?[\d.]+|-inf|nan)\s+LUFS/g)];
  const last = all.at(-1)?.[1];
  if (last === undefined) return undefined;
  const value = Number(last);
  return Number.isFinite(value) ? value : -Infinity;
}

/** The gain in dB that brings `measured` LUFS to the target, within bounds; 0 for silence. */
export function loudnessGain(measured: number): number {
  if (!Number.isFinite(measured) || measured < -70) return 0;
  return Math.min(MAX_GAIN_DB, Math.max(MIN_GAIN_DB, TARGET_LUFS - measured));
}

/** Adds the audio to the graph as [aout]. `loudness`: the measured LUFS (undefined: no music, or not measured). */
export function addAudio(spec: RenderSpec, assets: PlanAssets, seconds: number, loudness: number | undefined, g: Graph, clips: ClipAudio[] = []): void {
  if (clips.length > 0) {
    // The same mix the loudness pass measured, then the same gain and limiter.
    const mix = addMix(spec, assets, seconds, clips, g, false)!;
    const gain = loudness === undefined ? 0 : loudnessGain(loudness);
    g.add(`${mix}volume=${gain.toFixed(2)}dB,alimiter=limit=0.891:level=0:latency=1,atrim=duration=${seconds}[aout]`);
    return;
  }
  const m = music(spec, assets, seconds);
  if (!m) {
    g.add(`anullsrc=r=${RATE}:cl=stereo,${NORMALIZE},atrim=duration=${seconds}[aout]`);
    return;
  }
  const label = g.input(m.input, 'a');
  const gain = loudness === undefined ? 0 : loudnessGain(loudness);
  // The limiter keeps peaks under -1 dBFS after the gain; level=0 stops it from
  // levelling the whole track (its default), which would undo the gain.
  const volume = spec.audio?.volume ?? 1;
  const tail = `volume=${gain.toFixed(2)}dB,alimiter=limit=0.891:level=0:latency=1${volume !== 1 ? `,volume=${volume}` : ''}`;
  g.add(`${label}${m.chain},${tail},atrim=duration=${seconds}[aout]`);
}
