//! The markdown table of a run.

use super::{Report, Row};

impl Report {
    pub(crate) fn markdown(&self) -> String {
        let with_bull = self
            .bullmq
            .as_ref()
            .is_some_and(|b| b.get("error").is_none());
        let env = &self.environment;
        let mut out = format!(
            "Conveyor benchmark, {} mode, {} jobs per throughput scenario — {} · {} CPUs ({}) · PostgreSQL {} · Redis {}\n\n",
            if self.quick { "quick" } else { "full" },
            self.jobs,
            env["date"].as_str().unwrap_or("?"),
            env["cpus"],
            env["cpu_model"].as_str().unwrap_or("?"),
            env["postgres"].as_str().unwrap_or("?"),
            env["redis"].as_str().unwrap_or("?"),
        );
        out.push_str("| scenario | metric | Conveyor | target |");
        if with_bull {
            out.push_str(" BullMQ | ratio |");
        }
        out.push('\n');
        out.push_str("|---|---|---:|---|");
        if with_bull {
            out.push_str("---:|---:|");
        }
        out.push('\n');
        // Rows were pushed in run order; show them in scenario order.
        let mut rows: Vec<&Row> = self.rows.iter().collect();
        rows.sort_by_key(|r| r.label.chars().next());
        for row in rows {
            let mark = match self.resolved(row).met(row.value) {
                Some(true) => " ✔",
                Some(false) => " ✘",
                None => "",
            };
            out.push_str(&format!(
                "| {} | {} | {} | {}{mark} |",
                row.label,
                row.metric,
                fmt(row.value),
                self.target_text(row)
            ));
            if with_bull {
                match row.bullmq.and_then(|b| self.bullmq_figure(b)) {
                    Some(b) if b > 0.0 => {
                        out.push_str(&format!(" {} | {:.2}x |", fmt(b), row.value / b))
                    }
                    _ => out.push_str(" — | — |"),
                }
            }
            out.push('\n');
        }
        if with_bull {
            out.push_str(
                "\nratio = Conveyor ÷ BullMQ (jobs/s: higher is better; ms, CPU and MB: lower is better).\n",
            );
        }
        if !with_bull && !self.quick {
            out.push_str(
                "\nTargets use BullMQ 6.7 figures measured on a reference machine (22 500 bulk, 16 200 drain, 9 700 end to end jobs/s, 0.17 ms CPU/job); run with --with-bullmq to measure BullMQ in the same run.\n",
            );
        }
        out
    }
}

/// Numbers for the table: thousands grouped with a space, few decimals.
pub(super) fn fmt(v: f64) -> String {
    if v.abs() >= 1_000.0 {
        let s = format!("{:.0}", v);
        let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
        format!("{sign}{}", group_digits(digits))
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// "1000000" → "1 000 000".
pub(crate) fn group_digits(digits: &str) -> String {
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(' ');
        }
        grouped.push(c);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::{fmt, group_digits};

    #[test]
    fn groups_thousands() {
        assert_eq!(group_digits("1000000"), "1 000 000");
        assert_eq!(group_digits("10000"), "10 000");
        assert_eq!(group_digits("999"), "999");
    }

    #[test]
    fn formats() {
        assert_eq!(fmt(22_500.0), "22 500");
        assert_eq!(fmt(1_234_567.4), "1 234 567");
        assert_eq!(fmt(512.3), "512");
        assert_eq!(fmt(2.456), "2.46");
        assert_eq!(fmt(0.0851), "0.085");
    }
}
