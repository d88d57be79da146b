// Raw transport baseline: a worker that echoes every message, no lockdown, no CapTP.
import { parentPort } from 'node:worker_threads';

parentPort?.on('message', message => parentPort?.postMessage(message));
