// `npm run dashboards`: write the generated dashboards and alert rules into
// dashboards/. Check the result in; test/dashboards.test.ts fails when stale.
import { writeFileSync } from 'node:fs';
import { renderAll } from './index.js';

const dir = new URL('../', import.meta.url);
for (const [name, text] of Object.entries(renderAll())) {
  writeFileSync(new URL(name, dir), text);
  console.log(`dashboards/${name}`);
}
