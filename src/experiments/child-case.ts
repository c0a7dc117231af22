// One case of an experiment in a child process of its own: its host memory and garbage do not weigh on the
// next case, and a case that fails ends its own process, not the experiment's.

import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ExperimentError } from './numa-placement.js';

/**
 * Runs `module` (a file URL, `import.meta.url` of an experiment that calls `serveCase` at its top level) in a
 * child process with `request`, and returns the result it sends back. `name` says which case in errors.
 */
export function runCaseInChild<T>(module: string, request: unknown, name: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(module), [JSON.stringify(request)], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    let stderr = '';
    let result: T | { error: string } | undefined;
    child.stderr!.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-4000); });
    child.on('message', (m) => { result = m as T | { error: string }; });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (result !== undefined && typeof result === 'object' && result !== null && 'error' in result) reject(new ExperimentError(`${name}: ${(result as { error: string }).error}`));
      else if (result !== undefined) resolve(result as T);
      else reject(new ExperimentError(`${name}: the case's process ended (code ${code}) without a result: ${stderr.trim().split('\n').slice(-3).join(' / ')}`));
    });
  });
}

/**
 * The child's side: when this process is `module` run by `runCaseInChild`, runs the case given on the command
 * line with `run` and sends the result (or the error's message) back.
 */
export function serveCase<R, T>(module: string, run: (request: R) => Promise<T>): void {
  if (process.send === undefined || process.argv[1] !== fileURLToPath(module)) return;
  const request = JSON.parse(process.argv[2]!) as R;
  run(request).then(
    (r) => process.send!(r, () => process.exit(0)),
    (error: unknown) => process.send!({ error: error instanceof Error ? error.message : String(error) }, () => process.exit(0)),
  );
}
