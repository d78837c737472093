//! Retry timing: decorrelated-jitter backoff and `Retry-After` parsing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;

/// How often and how patiently a request is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first (1 = no retries).
    pub max_attempts: u32,
    /// Smallest pause between attempts.
    pub base: Duration,
    /// Largest pause between attempts; also the longest `Retry-After` the
    /// client waits for (a server asking for more gets its answer returned).
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(10),
        }
    }
}

/// Decorrelated jitter ("Exponential Backoff And Jitter", AWS architecture
/// blog): each pause is uniform in `[base, 3 × previous]`, capped. It spreads
/// competing clients better than plain exponential backoff.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    previous: Duration,
}

impl Backoff {
    pub fn new(policy: &RetryPolicy) -> Self {
        let base = policy.base.min(policy.cap);
        Backoff {
            base,
            cap: policy.cap,
            previous: base,
        }
    }

    /// The next pause.
    pub fn next_delay(&mut self) -> Duration {
        let upper = self.previous.saturating_mul(3).max(self.base);
        let delay = if upper > self.base {
            rand::rng().random_range(self.base..=upper)
        } else {
            self.base
        };
        let delay = delay.min(self.cap);
        self.previous = delay;
        delay
    }
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP-date (IMF-fixdate,
/// RFC 850 or asctime form). A date in the past gives zero.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses the three HTTP-date forms of RFC 9110 §5.6.7 (always GMT).
pub fn parse_http_date(value: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    let (day, month, year, time) = match parts.as_slice() {
        // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
        [wd, d, m, y, t, "GMT"] if wd.ends_with(',') => (*d, *m, y.parse::<i64>().ok()?, *t),
        // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"
        [wd, dmy, t, "GMT"] if wd.ends_with(',') => {
            let mut it = dmy.split('-');
            let (d, m, y) = (it.next()?, it.next()?, it.next()?);
            let y: i64 = y.parse().ok()?;
            // Two-digit years: RFC 9110 says interpret as within 50 years.
            let y = if y < 100 {
                if y < 70 { 2000 + y } else { 1900 + y }
            } else {
                y
            };
            (d, m, y, *t)
        }
        // asctime: "Sun Nov  6 08:49:37 1994"
        [_wd, m, d, t, y] => (*d, *m, y.parse::<i64>().ok()?, *t),
        _ => return None,
    };
    let day: i64 = day.parse().ok()?;
    let month = month_number(month)?;
    let mut hms = time.split(':');
    let (h, mi, s): (i64, i64, i64) = (
        hms.next()?.parse().ok()?,
        hms.next()?.parse().ok()?,
        hms.next()?.parse().ok()?,
    );
    if hms.next().is_some()
        || !(1..=31).contains(&day)
        || !(0..24).contains(&h)
        || !(0..60).contains(&mi)
        || !(0..61).contains(&s)
    {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + h * 3600 + mi * 60 + s;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

fn month_number(name: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(name))
        .map(|i| i as i64 + 1)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn retry_after_seconds() {
        assert_eq!(
            parse_retry_after("120", at(0)),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", at(0)), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-1", at(0)), None);
        assert_eq!(parse_retry_after("1.5", at(0)), None);
        assert_eq!(parse_retry_after("", at(0)), None);
        assert_eq!(parse_retry_after("soon", at(0)), None);
    }

    #[test]
    fn retry_after_http_dates_in_all_three_forms() {
        // 1994-11-06T08:49:37Z = 784111777
        let t = at(784_111_777);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(t));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", t),
            Some(Duration::from_secs(30))
        );
        // A date in the past means "now".
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", t),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 25:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 CET"), None);
    }

    #[test]
    fn leap_years_and_month_ends() {
        // 2024-02-29T00:00:00Z = 1709164800
        assert_eq!(
            parse_http_date("Thu, 29 Feb 2024 00:00:00 GMT"),
            Some(at(1_709_164_800))
        );
        assert_eq!(
            parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(at(0))
        );
    }

    #[test]
    fn backoff_stays_within_base_and_cap() {
        let policy = RetryPolicy {
            max_attempts: 50,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
        };
        for _ in 0..20 {
            let mut b = Backoff::new(&policy);
            let mut prev = policy.base;
            for _ in 0..40 {
                let d = b.next_delay();
                assert!(d >= policy.base, "{d:?} below base");
                assert!(d <= policy.cap, "{d:?} above cap");
                assert!(d <= prev * 3, "{d:?} above 3x previous {prev:?}");
                prev = d;
            }
        }
    }

    #[test]
    fn backoff_grows_on_average() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base: Duration::from_millis(10),
            cap: Duration::from_secs(60),
        };
        let mut late_total = Duration::ZERO;
        for _ in 0..50 {
            let mut b = Backoff::new(&policy);
            for _ in 0..5 {
                b.next_delay();
            }
            late_total += b.next_delay();
        }
        // Mean of the sixth pause is far above the base.
        assert!(late_total / 50 > policy.base * 5, "{late_total:?}");
    }

    #[test]
    fn backoff_with_base_above_cap_uses_cap() {
        let policy = RetryPolicy {
            max_attempts: 3,
            base: Duration::from_secs(5),
            cap: Duration::from_secs(1),
        };
        let mut b = Backoff::new(&policy);
        assert_eq!(b.next_delay(), Duration::from_secs(1));
    }
}
