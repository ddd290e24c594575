import type { VideoBody } from '../api/schemas.js';

/** A one-line progress bar on a terminal; silent when output is piped. */
export function progressBar(stream: NodeJS.WriteStream = process.stderr) {
  if (!stream.isTTY) return { update: (_v: VideoBody) => {}, done: () => {} };
  return {
    update(v: VideoBody) {
      const width = 30;
      const filled = Math.round(v.progress * width);
      stream.write(`\r${v.id} [${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${String(Math.round(v.progress * 100)).padStart(3)}% ${v.status.padEnd(10)}`);
    },
    done: () => stream.write('\n'),
  };
}
