//! systemd's service notification protocol (`Type=notify`): READY once a binary
//! serves or claims, WATCHDOG only while the loops that prove progress keep
//! beating, STOPPING on SIGTERM, and STATUS lines. Without `NOTIFY_SOCKET` (not
//! run by systemd) every call does nothing.
//!
//! A loop that proves progress holds a [`Probe`] and beats it on every turn (the
//! claim loops, the cron loop, the API's self-check of `/health`). The watchdog
//! task pings systemd only while every probe beat within the watchdog interval, so
//! a loop that is stuck (a hung connection, a deadlock) gets the process restarted,
//! while a timer alone would keep pinging.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "could not notify systemd");
    }
}

/// Tells systemd the service is up, with a status line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells systemd the service is stopping (after SIGTERM), with a status line.
pub fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

/// A status line for `systemctl status`.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// During a drain: the count left as the status line, and a watchdog ping (the
/// drain itself is bounded by its timeout, and by systemd's `TimeoutStopSec`).
pub fn draining(running: usize) {
    let line = format!("draining {running} jobs");
    send(&[NotifyState::Status(&line), NotifyState::Watchdog]);
}

/// One loop's last beat.
#[derive(Clone)]
pub struct Probe {
    name: Arc<str>,
    start: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Probe {
    /// The loop made a turn.
    pub fn beat(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// The probes of one process and the watchdog that reads them.
#[derive(Clone, Default)]
pub struct Liveness {
    probes: Arc<Mutex<Vec<Probe>>>,
}

impl Liveness {
    pub fn new() -> Self {
        Self::default()
    }

    /// A probe for the loop `name`, counted as beating now.
    pub fn probe(&self, name: &str) -> Probe {
        let probe = Probe {
            name: Arc::from(name),
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        };
        probe.beat();
        self.probes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(probe.clone());
        probe
    }

    /// The first probe silent for longer than `limit`, if any.
    pub fn stalled(&self, limit: Duration) -> Option<(String, Duration)> {
        let probes = self.probes.lock().unwrap_or_else(|p| p.into_inner());
        probes
            .iter()
            .map(|p| (p.name.to_string(), p.silent_for()))
            .find(|(_, silent)| *silent > limit)
    }

    /// Pings systemd's watchdog every half interval while no probe is stalled,
    /// until `stop`. Returns at once when systemd set no watchdog
    /// (`WatchdogSec=`).
    pub async fn run_watchdog(self, stop: CancellationToken) {
        let Some(interval) = sd_notify::watchdog_enabled() else {
            return;
        };
        let mut ticks = tokio::time::interval(interval / 2);
        let mut warned = false;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.cancelled() => return,
            }
            match self.stalled(interval) {
                None => {
                    warned = false;
                    send(&[NotifyState::Watchdog]);
                }
                Some((name, silent)) if !warned => {
                    warned = true;
                    tracing::error!(probe = %name, silent_ms = silent.as_millis() as u64, "a loop stopped making progress; no longer pinging the systemd watchdog");
                }
                Some(_) => {}
            }
        }
    }
}

/// Beats `probe` each time this process's own HTTP server answers `GET /health`
/// on `addr` (any status: an answer proves the server serves), every `every`,
/// until `stop`.
pub async fn run_http_self_check(
    addr: std::net::SocketAddr,
    probe: Probe,
    every: Duration,
    stop: CancellationToken,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let ask = || async move {
        let mut conn = tokio::net::TcpStream::connect(addr).await?;
        conn.write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await?;
        let mut head = [0u8; 12];
        conn.read_exact(&mut head).await?;
        Ok::<bool, std::io::Error>(head.starts_with(b"HTTP/1."))
    };
    let mut ticks = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.cancelled() => return,
        }
        if let Ok(Ok(true)) = tokio::time::timeout(every, ask()).await {
            probe.beat();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_that_stops_beating_is_reported_stalled() {
        let liveness = Liveness::new();
        let busy = liveness.probe("busy");
        let _quiet = liveness.probe("quiet");
        assert_eq!(liveness.stalled(Duration::from_millis(50)), None);
        std::thread::sleep(Duration::from_millis(80));
        busy.beat();
        let (name, silent) = liveness
            .stalled(Duration::from_millis(50))
            .expect("stalled");
        assert_eq!(name, "quiet");
        assert!(silent >= Duration::from_millis(50), "{silent:?}");
    }
}
