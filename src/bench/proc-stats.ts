/**
 * What Linux says about processes and the machine (/proc): CPU time of a
 * process, its peak resident memory, and how busy all CPUs were.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';

let clockTicks: number | undefined;

/** Clock ticks per second of /proc CPU times (`getconf CLK_TCK`, 100 on nearly every Linux). */
export function clkTck(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** User + system CPU seconds a process has used so far, or null when it is gone. */
export function cpuSeconds(pid: number): number | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name (field 2) may hold spaces: count fields after its ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
  return (utime + stime) / clkTck();
}

/** Peak resident set size of a process in bytes (VmHWM), or null when it is gone. */
export function peakRssBytes(pid: number): number | null {
  return statusKb(pid, 'VmHWM');
}

/** Resident set size of a process now, in bytes (VmRSS), or null when it is gone. */
export function rssBytes(pid: number): number | null {
  return statusKb(pid, 'VmRSS');
}

function statusKb(pid: number, field: 'VmHWM' | 'VmRSS'): number | null {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

interface ProcCpu {
  readonly ppid: number;
  /** utime + stime + cutime + cstime, in ticks. */
  readonly ticks: number;
}

function allProcesses(): Map<number, ProcCpu> {
  const procs = new Map<number, ProcCpu>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const text = readFileSync(`/proc/${name}/stat`, 'utf8');
      const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
      procs.set(Number(name), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]) });
    } catch {
      // ended while we looked
    }
  }
  return procs;
}

/**
 * CPU seconds of this process and all its descendants (servers, agent),
 * including children that already ended (their time is in their parent's
 * cutime/cstime), and of the kernel's own threads (children of kthreadd).
 */
function treeAndKernelThreads(rootPid: number): { tree: number; kernelThreads: number } {
  const procs = allProcesses();
  const children = new Map<number, number[]>();
  for (const [pid, p] of procs) children.set(p.ppid, [...(children.get(p.ppid) ?? []), pid]);
  let tree = 0;
  const todo = [rootPid];
  while (todo.length) {
    const pid = todo.pop()!;
    tree += procs.get(pid)?.ticks ?? 0;
    todo.push(...(children.get(pid) ?? []));
  }
  let kernelThreads = 0;
  for (const [pid, p] of procs) if (pid === 2 || p.ppid === 2) kernelThreads += p.ticks;
  return { tree: tree / clkTck(), kernelThreads: kernelThreads / clkTck() };
}

/** CPU seconds of a process and all its descendants so far, ended children included (e.g. a PostgreSQL server: postmaster and every backend). */
export function processTreeCpuSeconds(rootPid: number): number {
  return treeAndKernelThreads(rootPid).tree;
}

/**
 * Machine CPU during a phase: how busy all CPUs were, what the kernel did
 * outside any process (interrupts, softirqs such as loopback networking,
 * steal, kernel threads), and how much went to user processes outside this
 * benchmark's process tree: other work on the machine, which disturbs the
 * figures (ideally ~0).
 */
export class PhaseCpu {
  private readonly jiffies = cpuJiffies();
  private readonly procs = treeAndKernelThreads(process.pid);

  finish(): { machineBusy: number | null; kernelCpuSeconds: number; foreignCpuSeconds: number } {
    const j = cpuJiffies();
    const procs = treeAndKernelThreads(process.pid);
    const busy = (j.busy - this.jiffies.busy) / clkTck();
    const kernel = (j.kernel - this.jiffies.kernel) / clkTck() + (procs.kernelThreads - this.procs.kernelThreads);
    const tree = procs.tree - this.procs.tree;
    return { machineBusy: busyShare(this.jiffies, j), kernelCpuSeconds: kernel, foreignCpuSeconds: Math.max(0, busy - tree - kernel) };
  }
}

/** Busy, kernel-only (irq + softirq + steal) and total jiffies of all CPUs together (first line of /proc/stat). */
export function cpuJiffies(): { busy: number; kernel: number; total: number } {
  try {
    const first = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const v = first.trim().split(/\s+/).slice(1).map(Number);
    const total = v.slice(0, 8).reduce((s, x) => s + (Number.isFinite(x) ? x : 0), 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0); // idle + iowait
    return { busy: total - idle, kernel: (v[5] ?? 0) + (v[6] ?? 0) + (v[7] ?? 0), total };
  } catch {
    return { busy: 0, kernel: 0, total: 0 };
  }
}

/** Share of all CPUs that was busy between two readings (0..1). */
export function busyShare(from: { busy: number; total: number }, to: { busy: number; total: number }): number | null {
  const total = to.total - from.total;
  return total > 0 ? (to.busy - from.busy) / total : null;
}

export interface MachineInfo {
  readonly cpu: string;
  readonly cores: number;
  readonly ramBytes: number;
  readonly kernel: string;
  readonly node: string;
}

export function machineInfo(): MachineInfo {
  let cpu = os.cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m?.[1]) cpu = m[1].trim();
  } catch {
    // not Linux: os.cpus() is the best we have
  }
  return { cpu, cores: os.cpus().length, ramBytes: os.totalmem(), kernel: `${os.type()} ${os.release()}`, node: process.version };
}
