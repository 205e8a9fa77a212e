//! Which local process is the server under test. `pidof longlat` names
//! every longlat process, clients such as a `watch` beside the server
//! included, so the server is told apart by what only it holds: the
//! socket listening on the benchmarked port, found in `/proc/net/tcp` and
//! `/proc/net/tcp6`, then among the processes' open descriptors (Linux; a
//! process of another user whose descriptors cannot be read is not found).

use std::fs;
use std::net::IpAddr;

use reqwest::Url;

/// The `st` column of a listening socket in `/proc/net/tcp`.
const LISTEN: &str = "0A";

/// The port `url` is served on, when its host is this machine.
pub fn local_port(url: &Url) -> Option<u16> {
    let host = url.host_str()?;
    let local = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified());
    local.then(|| url.port_or_known_default())?
}

/// The first of `candidates` (every process when `None`) holding a socket
/// that listens on `port`.
pub fn listening_pid(port: u16, candidates: Option<&[u32]>) -> Option<u32> {
    let inodes: Vec<u64> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .into_iter()
        .filter_map(|table| fs::read_to_string(table).ok())
        .flat_map(|table| listening_on(&table, port))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    match candidates {
        Some(pids) => pids.iter().copied().find(|&pid| holds_any(pid, &inodes)),
        None => fs::read_dir("/proc")
            .ok()?
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .find(|&pid| holds_any(pid, &inodes)),
    }
}

/// The inodes of the sockets listening on `port` in one `/proc/net/tcp*`
/// table: `sl local_address rem_address st … uid timeout inode`, the port
/// in hexadecimal after the address.
fn listening_on(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (_, local_port) = fields.get(1)?.rsplit_once(':')?;
            let listening =
                u16::from_str_radix(local_port, 16).ok()? == port && *fields.get(3)? == LISTEN;
            listening.then(|| fields.get(9)?.parse().ok())?
        })
        .collect()
}

/// Whether process `pid` has one of the sockets `inodes` open.
fn holds_any(pid: u32, inodes: &[u64]) -> bool {
    let Ok(descriptors) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    descriptors.filter_map(Result::ok).any(|fd| {
        fs::read_link(fd.path()).ok().is_some_and(|target| {
            target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok())
                .is_some_and(|inode: u64| inodes.contains(&inode))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_socket_is_read_from_the_table_as_linux_writes_it() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
            0: 0100007F:2274 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0\n\
            1: 0100007F:2274 0100007F:A1B2 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0 20 4 30 10 -1\n";
        assert_eq!(listening_on(table, 8820), vec![4242]);
        assert!(listening_on(table, 8844).is_empty());
    }

    #[test]
    fn only_this_machines_addresses_are_looked_for() {
        let port = |url: &str| local_port(&Url::parse(url).expect("a URL"));
        assert_eq!(port("http://127.0.0.1:8844"), Some(8844));
        assert_eq!(port("http://localhost"), Some(80));
        assert_eq!(port("http://[::1]:9000/"), Some(9000));
        assert_eq!(port("http://example.org:8844"), None);
    }

    #[test]
    fn this_process_is_found_by_the_socket_it_listens_on() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let port = listener.local_addr().expect("an address").port();
        let me = std::process::id();
        assert_eq!(listening_pid(port, Some(&[u32::MAX, me])), Some(me));
        assert_eq!(listening_pid(port, None), Some(me));
    }
}
