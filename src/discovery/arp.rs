//! The host's neighbour table (`/proc/net/arp` format): addresses of guests
//! without an agent, matched by their configured MACs. Only complete
//! entries count; the file is read at most once a second.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::proxmox::MacAddr;

/// `ATF_COM` and `ATF_PERM` of the kernel's flags column.
const COMPLETE: u32 = 0x2;
const PERMANENT: u32 = 0x4;
const REREAD_AFTER: Duration = Duration::from_secs(1);

/// One resolved neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbour {
    pub address: Ipv4Addr,
    pub mac: MacAddr,
}

/// Parses the table text: a header line, then `IP HWtype Flags HWaddr Mask Device`.
/// Lines that do not fit are skipped.
pub fn parse(text: &str) -> Vec<Neighbour> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 4 {
                return None;
            }
            let address: Ipv4Addr = cols[0].parse().ok()?;
            let flags = u32::from_str_radix(cols[2].trim_start_matches("0x"), 16).ok()?;
            let mac: MacAddr = cols[3].parse().ok()?;
            (flags & (COMPLETE | PERMANENT) != 0 && !mac.is_zero())
                .then_some(Neighbour { address, mac })
        })
        .collect()
}

/// The table file, re-read when the last read is older than a second.
pub struct NeighbourTable {
    path: PathBuf,
    last: Mutex<Option<(Instant, Vec<Neighbour>)>>,
}

impl NeighbourTable {
    pub fn new(path: PathBuf) -> Self {
        NeighbourTable {
            path,
            last: Mutex::new(None),
        }
    }

    /// Forget the last read (after a probe sweep filled the table).
    pub fn invalidate(&self) {
        *self.last.lock().expect("neighbour table lock") = None;
    }

    /// Current entries; an unreadable file is an error message for the log.
    pub fn entries(&self) -> Result<Vec<Neighbour>, String> {
        let mut last = self.last.lock().expect("neighbour table lock");
        if let Some((at, list)) = last.as_ref()
            && at.elapsed() < REREAD_AFTER
        {
            return Ok(list.clone());
        }
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
        let list = parse(&text);
        *last = Some((Instant::now(), list.clone()));
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
IP address       HW type     Flags       HW address            Mask     Device
192.0.2.77       0x1         0x2         bc:24:11:00:00:77     *        vmbr0
192.0.2.78       0x1         0x0         bc:24:11:00:00:78     *        vmbr0
192.0.2.79       0x1         0x2         00:00:00:00:00:00     *        vmbr0
198.51.100.4     0x1         0x6         BC:24:11:00:00:04     *        vmbr1
garbage line
";

    #[test]
    fn keeps_complete_and_permanent_entries_only() {
        let n = parse(TABLE);
        assert_eq!(n.len(), 2);
        assert_eq!(n[0].address.to_string(), "192.0.2.77");
        assert_eq!(n[0].mac, "BC:24:11:00:00:77".parse().unwrap());
        assert_eq!(n[1].address.to_string(), "198.51.100.4");
    }
}
