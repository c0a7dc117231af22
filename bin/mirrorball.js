#!/usr/bin/env node
// The `mirrorball` command: a thin launcher for the compiled command line in dist/.
import { main } from '../dist/cli/main.js';

main(process.argv).catch((error) => {
  process.stderr.write(`mirrorball: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
