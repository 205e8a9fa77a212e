//! The measured server's memory and CPU, read from `/proc/<pid>` (Linux).

use std::fs;

/// A server process watched through `/proc`.
#[derive(Debug, Clone, Copy)]
pub struct ServerProcess {
    pid: u32,
}

/// Clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux).
pub const TICKS_PER_SECOND: f64 = 100.0;

impl ServerProcess {
    /// The process `pid`.
    pub fn new(pid: u32) -> Self {
        Self { pid }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Resident memory (`VmRSS`), KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        self.status_field("VmRSS")
    }

    /// Peak resident memory (`VmHWM`), KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.status_field("VmHWM")
    }

    /// User plus system CPU time so far, in clock ticks.
    pub fn cpu_ticks(&self) -> Option<u64> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        cpu_ticks(&stat)
    }

    fn status_field(&self, name: &str) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status_field(&status, name)
    }
}

/// A `Name:   1234 kB` line of `/proc/<pid>/status`.
fn status_field(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// `utime + stime` from `/proc/<pid>/stat`: fields 14 and 15, counted after
/// the command name, which is in parentheses and may hold spaces.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_read_as_linux_writes_them() {
        let status = "Name:\tlonglat\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_field(status, "VmRSS"), Some(10240));
        assert_eq!(status_field(status, "VmHWM"), Some(20480));
        let stat = "4242 (long lat) S 1 4242 4242 0 -1 4194560 812 0 0 0 31 7 0 0 20 0 9 0";
        assert_eq!(cpu_ticks(stat), Some(38));
    }

    #[test]
    fn this_process_can_be_watched() {
        let me = ServerProcess::new(std::process::id());
        assert!(me.rss_kib().is_some_and(|kib| kib > 0));
        assert!(me.cpu_ticks().is_some());
    }
}
