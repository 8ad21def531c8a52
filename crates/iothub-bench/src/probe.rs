//! Samples a broker process's CPU time and resident memory from `/proc`, so a run can report
//! what its load cost the broker.
//!
//! CPU time is `utime + stime` from `/proc/PID/stat` (fields 14 and 15), in clock ticks converted
//! with `getconf CLK_TCK`, read once; if `getconf` is missing, 100 ticks per second is assumed (the
//! value on every mainstream Linux). Resident memory is `VmRSS` from `/proc/PID/status`. Linux only;
//! elsewhere sampling fails with a clear error. Nothing here writes.

use std::process::Command;

use crate::error::BenchError;

/// Clock ticks per second assumed when `getconf CLK_TCK` cannot be run.
const DEFAULT_CLK_TCK: u64 = 100;

/// One reading of a process's counters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// User plus system CPU time consumed so far, in seconds.
    pub cpu_seconds: f64,
    /// Resident set size in KiB.
    pub rss_kib: u64,
}

/// Reads `/proc` for one process.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The process id.
    pid: u32,
    /// Clock ticks per second, for converting `utime` and `stime`.
    ticks_per_second: u64,
}

impl Probe {
    /// A probe for `pid`, checked by taking one sample.
    pub fn new(pid: u32) -> Result<Probe, BenchError> {
        let probe = Probe { pid, ticks_per_second: clock_ticks_per_second() };
        probe.sample()?;
        Ok(probe)
    }

    /// Reads the process's CPU time and resident memory now.
    pub fn sample(&self) -> Result<Sample, BenchError> {
        let read = |file: &str| {
            let path = format!("/proc/{}/{file}", self.pid);
            std::fs::read_to_string(&path).map_err(|e| BenchError::io(format!("reading {path}"), e))
        };
        let bad = |file: &str| BenchError::Broker(format!("cannot parse /proc/{}/{file}", self.pid));
        let ticks = parse_cpu_ticks(&read("stat")?).ok_or_else(|| bad("stat"))?;
        let rss_kib = parse_rss_kib(&read("status")?).ok_or_else(|| bad("status"))?;
        #[allow(clippy::cast_precision_loss)] // Ticks stay far below 2^52.
        let cpu_seconds = ticks as f64 / self.ticks_per_second as f64;
        Ok(Sample { cpu_seconds, rss_kib })
    }
}

/// Clock ticks per second from `getconf CLK_TCK`, or `DEFAULT_CLK_TCK`.
fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(DEFAULT_CLK_TCK)
}

/// `utime + stime` from the text of `/proc/PID/stat`. The command name (field 2) may hold spaces
/// and parentheses, so fields are counted from after its last `)`: field 3 is index 0 there.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS` in KiB from the text of `/proc/PID/status`.
fn parse_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_skip_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (my (odd) broker) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    250 75 0 0 20 0 8 0 123456 987654321 4321 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
        assert_eq!(parse_cpu_ticks("4242 (x) S 1"), None);
    }

    #[test]
    fn rss_comes_from_the_vmrss_line() {
        let status = "Name:\tiothub\nVmPeak:\t  99999 kB\nVmRSS:\t   10240 kB\nThreads:\t3\n";
        assert_eq!(parse_rss_kib(status), Some(10240));
        assert_eq!(parse_rss_kib("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn the_current_process_can_be_sampled() {
        let probe = Probe::new(std::process::id()).unwrap();
        let sample = probe.sample().unwrap();
        assert!(sample.rss_kib > 0);
        assert!(sample.cpu_seconds >= 0.0);
    }
}
