//! The lab's clock. Task durations, agent boot delays, token idle timeouts and
//! `/cluster/resources` lag are measured on it, so tests can run at a high
//! `scale` (virtual seconds per real second) or step time by hand with
//! [`Clock::advance`] instead of sleeping for real.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

#[derive(Clone)]
pub struct Clock {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    /// Virtual time at `anchor_real`.
    anchor_virtual: Duration,
    anchor_real: Instant,
    scale: f64,
    /// Wall-clock epoch that corresponds to virtual time zero.
    epoch: SystemTime,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clock")
            .field("elapsed", &self.elapsed())
            .field("scale", &self.scale())
            .finish()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new(1.0)
    }
}

impl Clock {
    /// A clock running `scale` virtual seconds per real second (0 = frozen,
    /// only [`Clock::advance`] moves it).
    pub fn new(scale: f64) -> Self {
        Clock {
            inner: Arc::new(Mutex::new(Inner {
                anchor_virtual: Duration::ZERO,
                anchor_real: Instant::now(),
                scale: scale.max(0.0),
                epoch: SystemTime::now(),
            })),
        }
    }

    /// Virtual time since the lab started.
    pub fn elapsed(&self) -> Duration {
        let g = self.inner.lock().unwrap();
        g.anchor_virtual + g.anchor_real.elapsed().mul_f64(g.scale)
    }

    /// Virtual wall-clock time (for epoch fields such as UPID start times).
    pub fn now_system(&self) -> SystemTime {
        let epoch = self.inner.lock().unwrap().epoch;
        epoch + self.elapsed()
    }

    /// Seconds since the Unix epoch on the virtual wall clock.
    pub fn unix_secs(&self) -> u64 {
        self.now_system()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    pub fn scale(&self) -> f64 {
        self.inner.lock().unwrap().scale
    }

    /// Change the speed from now on; virtual time already passed is kept.
    pub fn set_scale(&self, scale: f64) {
        let mut g = self.inner.lock().unwrap();
        let now = g.anchor_virtual + g.anchor_real.elapsed().mul_f64(g.scale);
        g.anchor_virtual = now;
        g.anchor_real = Instant::now();
        g.scale = scale.max(0.0);
    }

    /// Jump virtual time forward.
    pub fn advance(&self, by: Duration) {
        let mut g = self.inner.lock().unwrap();
        g.anchor_virtual += by;
    }

    /// Real time that corresponds to `virtual_dur` at the current scale
    /// (capped, so a frozen clock polls instead of sleeping forever).
    pub fn real_duration(&self, virtual_dur: Duration) -> Duration {
        let scale = self.scale();
        if scale <= 0.0 {
            return Duration::from_millis(10);
        }
        virtual_dur.div_f64(scale).min(Duration::from_secs(3600))
    }

    /// Sleep until `virtual_dur` of virtual time has passed (re-checking, so
    /// `advance` and `set_scale` take effect while sleeping).
    pub async fn sleep(&self, virtual_dur: Duration) {
        let deadline = self.elapsed() + virtual_dur;
        loop {
            let now = self.elapsed();
            if now >= deadline {
                return;
            }
            let wait = self
                .real_duration(deadline - now)
                .min(Duration::from_millis(50));
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }
}
