//! `status`: `/health`, plus `/api/admin/system/status` when the API serves it and
//! a token is given.

use serde_json::{json, Value};

use crate::client::{Client, ClientError};
use crate::output::{cell, object_lines, Output};
use crate::Error;

/// One service line of the health details: `up (1.23 ms)` or `down (reason)`.
fn service(details: &Value) -> String {
    let status = details
        .get("status")
        .map(cell)
        .unwrap_or_else(|| "-".into());
    match (details.get("latencyMs"), details.get("reason")) {
        (Some(ms), _) => format!("{status} ({} ms)", cell(ms)),
        (None, Some(reason)) => format!("{status} ({})", cell(reason)),
        _ => status,
    }
}

pub async fn show(client: &Client, out: Output) -> Result<(), Error> {
    let (code, health) = client.health().await?;
    let system = if client.has_token() {
        client.system_status().await?
    } else {
        None
    };
    let raw = json!({ "health": health, "system": system });
    out.emit(&raw, || {
        let mut text = format!(
            "api: {}\n",
            health.get("status").map(cell).unwrap_or_else(|| "-".into())
        );
        if let Some(details) = health.get("details").and_then(Value::as_object) {
            for (key, value) in details {
                let shown = if value.is_object() {
                    service(value)
                } else {
                    cell(value)
                };
                text.push_str(&format!("{key}: {shown}\n"));
            }
        }
        match &system {
            Some(system) => {
                text.push_str("\nsystem status:\n");
                text.push_str(&object_lines(system, &[]));
            }
            None if !client.has_token() => {
                text.push_str("\nsystem status: skipped (no token)\n");
            }
            None => text.push_str("\nsystem status: not served by this API\n"),
        }
        text
    });
    if code != 200 {
        return Err(ClientError::Server {
            status: code,
            code: "unhealthy".into(),
            message: "the API reports a backing service down".into(),
        }
        .into());
    }
    Ok(())
}
