#!/usr/bin/env node
// The `mirrorball` command: a thin launcher for the compiled command line in dist/.
import { main } from '../dist/cli/main.js';

await main(process.argv);
