//! One row per promise, printed as a table at the end: operations sent, acknowledged, lost,
//! duplicated (and how many of those no unknown outcome explains), unknown, unexpected.

use std::fmt::Write as _;

#[derive(Debug, Default, Clone)]
pub struct Row {
    pub promise: &'static str,
    /// Operations attempted (deliveries, emails due, jobs).
    pub sent: usize,
    /// Operations the system confirmed (2xx, accepted by SMTP, step committed).
    pub acknowledged: usize,
    /// Confirmed operations missing from the final read.
    pub lost: usize,
    /// Operations found more than once in the final read.
    pub duplicated: usize,
    /// Duplicates that no unknown outcome explains: always a failure.
    pub unexplained: usize,
    /// Operations whose outcome the client could not know (and so retried).
    pub unknown: usize,
    /// Things in the final read that no operation asked for.
    pub unexpected: usize,
    /// What went wrong; empty when the promise held.
    pub failures: Vec<String>,
    /// What the run observed besides the counts (faults injected, timings).
    pub notes: Vec<String>,
}

impl Row {
    pub fn new(promise: &'static str) -> Row {
        Row { promise, ..Row::default() }
    }

    pub fn check(&mut self, ok: bool, failure: impl Into<String>) {
        if !ok {
            self.failures.push(failure.into());
        }
    }

    /// Lost, unexplained duplicates and unexpected results fail the promise.
    pub fn finish(mut self) -> Row {
        let (lost, unexplained, unexpected) = (self.lost, self.unexplained, self.unexpected);
        self.check(lost == 0, format!("{lost} acknowledged operations lost"));
        self.check(unexplained == 0, format!("{unexplained} duplicates not explained by an unknown outcome"));
        self.check(unexpected == 0, format!("{unexpected} unexpected results"));
        self
    }

    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let header = ["promise", "sent", "acknowledged", "lost", "duplicated", "unexplained", "unknown", "unexpected", "result"];
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        lines.push(vec![
            r.promise.to_string(),
            r.sent.to_string(),
            r.acknowledged.to_string(),
            r.lost.to_string(),
            r.duplicated.to_string(),
            r.unexplained.to_string(),
            r.unknown.to_string(),
            r.unexpected.to_string(),
            if r.passed() { "ok".into() } else { "FAILED".into() },
        ]);
    }
    let widths: Vec<usize> = (0..header.len()).map(|i| lines.iter().map(|l| l[i].len()).max().unwrap_or(0)).collect();
    for (n, l) in lines.iter().enumerate() {
        let cells: Vec<String> = l
            .iter()
            .enumerate()
            .map(|(i, c)| if i == 0 { format!("{c:<w$}", w = widths[i]) } else { format!("{c:>w$}", w = widths[i]) })
            .collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
        if n == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            let _ = writeln!(out, "|-{}-|", rule.join("-|-"));
        }
    }
    out
}
