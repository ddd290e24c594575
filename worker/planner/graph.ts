// The filter graph under construction: its inputs, its chains and fresh
// labels. Every planner module writes into one Graph, so labels never collide
// and input indexes stay in step with the input list.
import type { FfmpegInput } from './types.js';

/** Local files only, and a forced format on every input: ffmpeg must never guess a playlist or concat list out of an asset. */
export const WHITELIST = ['-protocol_whitelist', 'file,pipe'];

export class Graph {
  readonly inputs: FfmpegInput[] = [];
  readonly chains: string[] = [];
  private next = 0;

  /** A label not used before: `[prefix<n>]`. */
  label(prefix: string): string {
    return `[${prefix}${this.next++}]`;
  }

  /** Adds an input; returns its stream label (`[k:v]` or `[k:a]`). */
  input(input: FfmpegInput, stream: 'v' | 'a'): string {
    this.inputs.push(input);
    return `[${this.inputs.length - 1}:${stream}]`;
  }

  add(chain: string): void {
    this.chains.push(chain);
  }

  /** `from` copied to `count` new labels (no filter when count is 1). */
  fanOut(from: string, count: number, prefix: string): string[] {
    if (count === 1) return [from];
    const outs = Array.from({ length: count }, () => this.label(prefix));
    this.add(`${from}split=${count}${outs.join('')}`);
    return outs;
  }

  toString(): string {
    return this.chains.join(';');
  }
}
