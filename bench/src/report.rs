//! The Markdown report: one table row per figure with firstcall's measure, the reference from the
//! same run, their ratio and the target, then the machine and the details behind the rows.

use std::fmt::Write;

#[derive(Debug, Clone)]
pub struct Row {
    pub figure: String,
    pub measure: String,
    pub firstcall: String,
    pub reference: String,
    pub ratio: String,
    pub target: String,
    /// None: informational, no target.
    pub met: Option<bool>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub title: String,
    pub machine: Vec<(String, String)>,
    pub rows: Vec<Row>,
    /// Further sections: heading and Markdown body.
    pub sections: Vec<(String, String)>,
}

impl Report {
    /// Adds a row; `target` is the target's text and whether it was met (None: no target).
    pub fn row(&mut self, figure: &str, measure: &str, firstcall: String, reference: String, ratio: String, target: (&str, Option<bool>)) {
        let (target, met) = target;
        self.rows.push(Row { figure: figure.into(), measure: measure.into(), firstcall, reference, ratio, target: target.into(), met });
    }

    /// The table alone (README quotes it).
    pub fn table(&self) -> String {
        let mut s = String::new();
        s.push_str("| # | measure | firstcall | reference (same run) | ratio | target | met |\n|---|---|---|---|---|---|---|\n");
        for r in &self.rows {
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            };
            let _ =
                writeln!(s, "| {} | {} | {} | {} | {} | {} | {} |", r.figure, r.measure, r.firstcall, r.reference, r.ratio, r.target, met);
        }
        s
    }

    pub fn machine_table(&self) -> String {
        let mut s = String::from("| | |\n|---|---|\n");
        for (k, v) in &self.machine {
            let _ = writeln!(s, "| {k} | {v} |");
        }
        s
    }

    pub fn markdown(&self) -> String {
        let mut s = format!("# {}\n\n", self.title);
        s.push_str(&self.table());
        s.push_str("\n## Machine\n\n");
        s.push_str(&self.machine_table());
        for (h, body) in &self.sections {
            let _ = write!(s, "\n## {h}\n\n{}\n", body.trim_end());
        }
        s
    }
}

pub fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 { format!("{:.2}×", a / b) } else { "–".into() }
}

pub fn per_s(v: f64) -> String {
    if v >= 100.0 { format!("{:.0}/s", v) } else { format!("{:.1}/s", v) }
}

pub fn mib(kib: Option<u64>) -> String {
    kib.map(|k| format!("{:.1} MiB", k as f64 / 1024.0)).unwrap_or_else(|| "?".into())
}
