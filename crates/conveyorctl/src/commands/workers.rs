//! `workers`: live workers.

use crate::client::Client;
use crate::output::{self, Output, Table};
use crate::Error;

pub async fn list(client: &Client, out: Output) -> Result<(), Error> {
    let reply = client.workers().await?;
    out.emit(&reply.raw, || {
        if reply.value.is_empty() {
            return "no live workers\n".into();
        }
        let mut table = Table::new(&[
            "ID",
            "HOST",
            "PID",
            "QUEUES",
            "CONCURRENCY",
            "RUNNING",
            "STARTED AT",
            "LAST HEARTBEAT",
        ]);
        for w in &reply.value {
            table.row(vec![
                w.id.clone(),
                w.host.clone(),
                w.pid.to_string(),
                w.queues.join(","),
                w.concurrency.to_string(),
                w.running.to_string(),
                output::time(&w.started_at),
                output::time(&w.last_heartbeat),
            ]);
        }
        table.render()
    });
    Ok(())
}
