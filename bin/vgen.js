#!/usr/bin/env node
// The `vgen` command. Sources run through tsx so the CLI, the tests and
// production all execute the same TypeScript files; there is no stale dist/.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
