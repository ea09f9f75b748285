// CPU and memory of processes and of the whole machine, from /proc.
import { readFileSync } from 'node:fs';

export const TICKS_PER_S = 100;

/** The process and, under node:cluster, its workers. */
export function processTree(pid: number): number[] {
  try {
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(' ')
      .filter((p) => p !== '')
      .map(Number);
    return [pid, ...children];
  } catch {
    return [pid];
  }
}

/** User plus system CPU the process has used so far, in ticks. */
export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

export function rssMb(pid: number): number {
  const match = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) / 1024;
}

/** Whole-machine busy ticks, to tell how much of the box the neighbours used. */
export function machineTicks(): number {
  const [, ...values] = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').split(/\s+/);
  const numbers = values.filter((v) => v !== '').map(Number);
  const idle = (numbers[3] ?? 0) + (numbers[4] ?? 0);
  return numbers.reduce((a, b) => a + b, 0) - idle;
}
