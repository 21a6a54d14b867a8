//! The figures of a run: the scenarios record them here (`figures`), each with its
//! target (`target`); the run ends with a markdown table (`table`) and a JSON
//! document.

mod figures;
mod table;
mod target;

use serde_json::{json, Map, Value};

pub(crate) use table::group_digits;
pub(crate) use target::Target;

struct Row {
    label: String,
    metric: &'static str,
    value: f64,
    target: Target,
    /// Where the same figure sits in BullMQ's JSON: (scenario, field).
    bullmq: Option<(&'static str, &'static str)>,
}

pub(crate) struct Report {
    quick: bool,
    jobs: usize,
    environment: Value,
    scenarios: Map<String, Value>,
    rows: Vec<Row>,
    bullmq: Option<Value>,
}

impl Report {
    pub(crate) fn new(quick: bool, jobs: usize) -> Self {
        Self {
            quick,
            jobs,
            environment: Value::Null,
            scenarios: Map::new(),
            rows: Vec::new(),
            bullmq: None,
        }
    }

    pub(crate) fn set_environment(&mut self, env: Value) {
        self.environment = env;
    }

    pub(crate) fn set_bullmq(&mut self, figures: Value) {
        self.bullmq = Some(figures);
    }

    fn target(&self, t: Target) -> Target {
        if self.quick {
            Target::None
        } else {
            t
        }
    }

    fn push(
        &mut self,
        label: &str,
        metric: &'static str,
        value: f64,
        target: Target,
        bullmq: Option<(&'static str, &'static str)>,
    ) {
        let target = self.target(target);
        self.rows.push(Row {
            label: label.to_string(),
            metric,
            value,
            target,
            bullmq,
        });
    }

    /// Merges `extra` (an object) into scenario `key`.
    pub(crate) fn extend(&mut self, key: &str, extra: Value) {
        if let (Some(Value::Object(s)), Value::Object(e)) = (self.scenarios.get_mut(key), extra) {
            s.extend(e);
        }
    }

    fn bullmq_figure(&self, (scenario, field): (&str, &str)) -> Option<f64> {
        self.bullmq.as_ref()?.get(scenario)?.get(field)?.as_f64()
    }

    pub(crate) fn json(&self) -> Value {
        let mut ratios = Map::new();
        if self.bullmq.is_some() {
            for row in &self.rows {
                if let Some(b) = row.bullmq.and_then(|b| self.bullmq_figure(b)) {
                    if b > 0.0 {
                        ratios.insert(
                            format!("{} / {}", row.label, row.metric),
                            json!(row.value / b),
                        );
                    }
                }
            }
        }
        json!({
            "mode": if self.quick { "quick" } else { "full" },
            "jobs": self.jobs,
            "environment": self.environment,
            "scenarios": self.scenarios,
            "targets": self.rows.iter().filter_map(|r| {
                let met = self.resolved(r).met(r.value)?;
                Some(json!({ "scenario": r.label, "metric": r.metric, "value": r.value, "target": self.target_text(r), "met": met }))
            }).collect::<Vec<_>>(),
            "bullmq": self.bullmq,
            "ratios": ratios,
        })
    }
}
