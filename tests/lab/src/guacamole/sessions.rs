//! Auth tokens and their sessions (§2): 64-char uppercase-hex tokens,
//! inactivity expiry detected by a once-per-minute sweep on the lab clock,
//! and the optional login-ban extension.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use rand::RngCore;

/// The sweep runs at every whole virtual minute since the lab started.
const SWEEP_PERIOD: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Session {
    pub username: String,
    /// Virtual time of the last use that reset the inactivity timer.
    pub last_active: Duration,
}

#[derive(Default)]
pub struct Sessions {
    by_token: HashMap<String, Session>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("count", &self.by_token.len())
            .finish()
    }
}

pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// First sweep at or after `idle_since + timeout`: the session dies there.
fn expiry(last_active: Duration, timeout: Duration) -> Duration {
    let deadline = (last_active + timeout).as_secs();
    let period = SWEEP_PERIOD.as_secs();
    Duration::from_secs(deadline.div_ceil(period) * period)
}

impl Sessions {
    /// Drop every session a sweep would have removed by `now`.
    pub fn sweep(&mut self, now: Duration, timeout: Duration) {
        self.by_token
            .retain(|_, s| now < expiry(s.last_active, timeout));
    }

    pub fn create(&mut self, username: &str, now: Duration) -> String {
        let token = new_token();
        self.by_token.insert(
            token.clone(),
            Session {
                username: username.to_string(),
                last_active: now,
            },
        );
        token
    }

    pub fn get(&self, token: &str) -> Option<&Session> {
        self.by_token.get(token)
    }

    pub fn touch(&mut self, token: &str, now: Duration) {
        if let Some(s) = self.by_token.get_mut(token) {
            s.last_active = now;
        }
    }

    pub fn remove(&mut self, token: &str) -> bool {
        self.by_token.remove(token).is_some()
    }

    pub fn remove_user(&mut self, username: &str) -> usize {
        let before = self.by_token.len();
        self.by_token.retain(|_, s| s.username != username);
        before - self.by_token.len()
    }

    pub fn clear(&mut self) -> usize {
        let n = self.by_token.len();
        self.by_token.clear();
        n
    }

    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    pub fn count_for(&self, username: &str) -> usize {
        self.by_token
            .values()
            .filter(|s| s.username == username)
            .count()
    }

    /// Make a session look idle since `since` (for expiry tests).
    pub fn set_last_active(&mut self, token: &str, since: Duration) -> bool {
        match self.by_token.get_mut(token) {
            Some(s) => {
                s.last_active = since;
                true
            }
            None => false,
        }
    }
}

/// Failed-login bookkeeping of the ban extension.
#[derive(Debug, Default)]
pub struct Bans {
    failures: HashMap<IpAddr, (u32, Duration)>,
}

impl Bans {
    pub fn is_banned(&mut self, ip: IpAddr, now: Duration, max: u32, length: Duration) -> bool {
        match self.failures.get(&ip) {
            Some((count, last)) if *count >= max => {
                if now < *last + length {
                    true
                } else {
                    self.failures.remove(&ip);
                    false
                }
            }
            _ => false,
        }
    }

    pub fn record_failure(&mut self, ip: IpAddr, now: Duration) {
        let entry = self.failures.entry(ip).or_insert((0, now));
        entry.0 += 1;
        entry.1 = now;
    }

    pub fn record_success(&mut self, ip: IpAddr) {
        self.failures.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_64_uppercase_hex() {
        let t = new_token();
        assert_eq!(t.len(), 64);
        assert!(
            t.chars()
                .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))
        );
    }

    #[test]
    fn expiry_waits_for_the_next_sweep() {
        let timeout = Duration::from_secs(60 * 60);
        let mut s = Sessions::default();
        let t = s.create("u", Duration::from_secs(30));
        // Deadline 3630 s; the sweep at 3660 s removes it.
        s.sweep(Duration::from_secs(3659), timeout);
        assert!(s.get(&t).is_some());
        s.sweep(Duration::from_secs(3660), timeout);
        assert!(s.get(&t).is_none());
    }
}
