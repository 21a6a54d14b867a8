//! Start-up helpers shared by the binaries: connect and wait for the services,
//! turn SIGTERM/SIGINT into a [`Shutdown`], serve `/metrics`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::config::{Config, LogFormat};
use crate::error::{BrokerError, StoreError};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::worker::Shutdown;

/// Logs to stderr, filtered by `RUST_LOG` (default `info`). Every binary calls it.
pub fn init_tracing(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => logs.init(),
        // One JSON object per line, with the current span (a job's id, queue,
        // type and attempt) on every event inside it.
        LogFormat::Json => logs.json().with_current_span(true).init(),
    }
}

/// Connects to PostgreSQL, retrying while it is unreachable; with `wait_for_schema`
/// also waits until every migration is applied (workers never migrate).
pub async fn connect_store(config: &Config, wait_for_schema: bool) -> Result<Store, StoreError> {
    let mut delay = Duration::from_millis(200);
    loop {
        let attempt = async {
            let store =
                Store::connect(&config.database.url, config.database.max_connections).await?;
            let current = !wait_for_schema || store.schema_is_current().await?;
            Ok::<_, StoreError>((store, current))
        };
        match attempt.await {
            Ok((store, true)) => return Ok(store),
            Ok((_, false)) => tracing::info!(
                "waiting for the database schema to be migrated (conveyor-api migrates it)"
            ),
            Err(StoreError::Unavailable(e)) => tracing::warn!(error = %e, "waiting for postgres"),
            Err(e) => return Err(e),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Connects to Redis, retrying while it is unreachable.
pub async fn connect_broker(config: &Config) -> Result<Broker, BrokerError> {
    let mut delay = Duration::from_millis(200);
    loop {
        match Broker::connect(&config.redis.url, &config.redis.prefix).await {
            Ok(b) => return Ok(b),
            Err(BrokerError::Redis(e))
                if e.is_io_error() || e.is_connection_refusal() || e.is_timeout() =>
            {
                tracing::warn!(error = %e, "waiting for redis");
            }
            Err(e) => return Err(e),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// First SIGTERM/SIGINT: drain. Second: abort (give running jobs back at once).
pub fn shutdown_on_signals() -> Shutdown {
    let shutdown = Shutdown::default();
    let s = shutdown.clone();
    tokio::spawn(async move {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return;
        };
        for token in [&s.drain, &s.abort] {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            tracing::info!("shutdown signal received");
            token.cancel();
        }
    });
    shutdown
}

/// Serves `GET /metrics` (Prometheus text format) on `listener` until `stop`.
/// Deliberately tiny: a worker needs no web framework for one route.
pub async fn serve_metrics(listener: TcpListener, metrics: Metrics, stop: CancellationToken) {
    loop {
        let (mut socket, _) = tokio::select! {
            accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
            _ = stop.cancelled() => return,
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n = socket.read(&mut buf).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let response = if request.starts_with("GET /metrics") {
                let body = metrics.render();
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    .to_string()
            };
            let _ = socket.write_all(response.as_bytes()).await;
        });
    }
}
