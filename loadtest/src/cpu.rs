//! CPU time of the processes of a run, from `/proc`: each named process with all its descendants (Pushpin runs
//! several), the load tool itself, and the whole machine (`/proc/stat`), so a phase can report CPU seconds per
//! million deltas delivered for the process that fans out (edge, nats-server, pushpin, bare-fanout) and overall.

use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// `NAME=PID` from `--cpu-pid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamedPid {
    pub name: String,
    pub pid: u32,
}

pub fn parse_named_pid(s: &str) -> Result<NamedPid, String> {
    let (name, pid) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected NAME=PID"))?;
    let pid = pid.trim().parse().map_err(|_| format!("{s:?}: the pid is not a number"))?;
    Ok(NamedPid { name: name.trim().to_owned(), pid })
}

/// Clock ticks per second of `/proc` times (USER_HZ; 100 on Linux).
fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// (ppid, utime + stime) of a `/proc/<pid>/stat` line; the name may hold spaces and parentheses.
fn parse_stat(stat: &str) -> Option<(u32, u64)> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // After the name: state ppid ... utime(14th field of the line) stime(15th).
    let ppid = f.get(1)?.parse().ok()?;
    let user: u64 = f.get(11)?.parse().ok()?;
    let system: u64 = f.get(12)?.parse().ok()?;
    Some((ppid, user + system))
}

/// Every live process: pid → (ppid, ticks).
fn processes() -> HashMap<u32, (u32, u64)> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if let Some(p) = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().as_deref().and_then(parse_stat) {
            out.insert(pid, p);
        }
    }
    out
}

/// Ticks of `root` and all its descendants.
fn tree_ticks(all: &HashMap<u32, (u32, u64)>, root: u32) -> u64 {
    let mut total = 0;
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        if let Some((_, t)) = all.get(&pid) {
            total += t;
        }
        stack.extend(all.iter().filter(|(_, (ppid, _))| *ppid == pid).map(|(p, _)| *p));
    }
    total
}

/// Busy ticks of the whole machine (everything but idle, iowait and steal), and steal: time the hypervisor gave
/// this VM's CPUs to someone else while they had work. On a shared host it varies from run to run, and a run
/// with more steal is slower for reasons outside the code.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().find(|l| l.starts_with("cpu ")) else { return (0, 0) };
    let f: Vec<u64> = cpu.split_ascii_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal
    ([0, 1, 2, 5, 6].iter().filter_map(|&i| f.get(i)).sum(), f.get(7).copied().unwrap_or(0))
}

/// CPU ticks at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    named: BTreeMap<String, u64>,
    machine: u64,
    steal: u64,
}

pub fn snapshot(pids: &[NamedPid]) -> Snapshot {
    let all = processes();
    let mut named = BTreeMap::new();
    for p in pids {
        *named.entry(p.name.clone()).or_insert(0) += tree_ticks(&all, p.pid);
    }
    named.insert("loadtest".into(), tree_ticks(&all, std::process::id()));
    let (machine, steal) = machine_ticks();
    Snapshot { named, machine, steal }
}

/// CPU seconds a phase took.
#[derive(Debug, Clone, Serialize, Default)]
pub struct PhaseCpu {
    /// Per process name (with descendants), the load tool as `loadtest`.
    pub secs: BTreeMap<String, f64>,
    /// The whole machine.
    pub machine_secs: f64,
    /// CPU time the hypervisor took from this VM ([`machine_ticks`]).
    pub steal_secs: f64,
    /// The process that fans out in this phase and its CPU seconds per million deltas delivered.
    pub server: String,
    pub server_secs_per_million: Option<f64>,
    pub machine_secs_per_million: Option<f64>,
}

impl PhaseCpu {
    pub fn between(a: &Snapshot, b: &Snapshot, server: &str, deltas: u64) -> PhaseCpu {
        let hz = ticks_per_sec();
        let secs: BTreeMap<String, f64> = b
            .named
            .iter()
            .map(|(k, v)| (k.clone(), v.saturating_sub(a.named.get(k).copied().unwrap_or(0)) as f64 / hz))
            .collect();
        let machine_secs = b.machine.saturating_sub(a.machine) as f64 / hz;
        let per_million = |s: f64| (deltas > 0).then(|| s * 1e6 / deltas as f64);
        PhaseCpu {
            server_secs_per_million: secs.get(server).copied().and_then(per_million),
            machine_secs_per_million: per_million(machine_secs),
            server: server.to_owned(),
            secs,
            machine_secs,
            steal_secs: b.steal.saturating_sub(a.steal) as f64 / hz,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_even_with_odd_names() {
        let line = "42 (a (b) c) S 7 42 42 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 1 0 1 1 1";
        assert_eq!(parse_stat(line), Some((7, 281)));
        assert_eq!(parse_named_pid("edge=12").unwrap(), NamedPid { name: "edge".into(), pid: 12 });
        assert!(parse_named_pid("edge").is_err());
    }

    #[test]
    fn own_cpu_is_counted() {
        let a = snapshot(&[]);
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        let b = snapshot(&[]);
        let cpu = PhaseCpu::between(&a, &b, "loadtest", 1_000_000);
        assert!(cpu.secs["loadtest"] >= 0.0 && cpu.machine_secs >= 0.0);
    }
}
